# nixld-hook for bash: after a command fails with 126/127 (a binary that could
# not start), or with 1 from a path (a library lacking a symbol version), ask
# `nixld-hook handle` what was missing. Sourced by the block
# `nixld-hook install` adds to ~/.bashrc, or `eval "$(nixld-hook init bash)"`.
#
# With nothing failed a prompt costs a few builtins: no fork, no subshell.
# Safe to source twice, under `set -u`, beside a string or array PROMPT_COMMAND
# and beside bash-preexec; only interactive shells are hooked.

if [[ $- == *i* ]]; then

# `\#` expands to the number of commands run so far; an empty Enter does not
# advance it, so the same failure is not handled twice (and no history needed).
__nixld_cmdno='\#'

# Runs only after a failure, so a fork is fine here. SIGINT is ignored by the
# shell meanwhile (the handler re-enables it for itself), then restored.
__nixld_handle() {
  local __nixld_trap __nixld_tool=${__nixld_bin:-nixld-hook}
  [[ $__nixld_tool == */* && ! -x $__nixld_tool ]] && return 0  # uninstalled: stay quiet
  __nixld_trap=$(builtin trap -p INT)
  builtin trap -- '' INT
  "$__nixld_tool" handle --shell bash --status "$1" --cwd "$PWD" -- "$2"
  if [[ -n $__nixld_trap ]]; then builtin eval "$__nixld_trap"; else builtin trap - INT; fi
}

# $1: the pipeline's statuses; $2 (optional): the command line, else the last
# history entry (read only now, after a failure).
__nixld_check() {
  case " $1 " in
    *" 127 "*) __nixld_handle 127 "${2-$(builtin fc -ln -0 -0 2>/dev/null)}" ;;
    *" 126 "*) __nixld_handle 126 "${2-$(builtin fc -ln -0 -0 2>/dev/null)}" ;;
    *" 1 "*) __nixld_check_path_1 "${2-$(builtin fc -ln -0 -0 2>/dev/null)}" ;;
  esac
}

# Status 1 is everyday (grep, false, make), but it is also how ld.so fails on
# a library lacking a symbol version: hand it over only when the line starts
# with a path (`./tool`), so a failing grep never starts Python.
__nixld_check_path_1() {
  local __nixld_w=${1#"${1%%[![:space:]]*}"}
  __nixld_w=${__nixld_w%%[[:space:]]*}
  if [[ $__nixld_w == */* ]]; then __nixld_handle 1 "$1"; fi
}

# PROMPT_COMMAND hook: first in the list, so $? and PIPESTATUS are the user's.
__nixld_prompt() {
  local __nixld_s=$? __nixld_ps="${PIPESTATUS[*]}" __nixld_n=${__nixld_cmdno@P}
  if [[ $__nixld_n != "${__nixld_seen-}" ]]; then
    __nixld_seen=$__nixld_n
    __nixld_check "$__nixld_ps"
  fi
  return "$__nixld_s"
}

# bash-preexec hooks: preexec hands over the command line without a fork.
__nixld_preexec() {
  __nixld_line=${1-}
  __nixld_armed=1
}
__nixld_precmd() {
  local __nixld_s=$? __nixld_ps="${BP_PIPESTATUS[*]-}"
  if [[ -n ${__nixld_armed-} ]]; then
    __nixld_armed=
    __nixld_check "${__nixld_ps:-$__nixld_s}" "${__nixld_line-}"
  fi
  return "$__nixld_s"
}

# What has run before this file was sourced is not ours to handle.
__nixld_seen=${__nixld_seen-${__nixld_cmdno@P}}

if [[ -n ${bash_preexec_imported-}${__bp_imported-} ]]; then
  # bash-preexec owns PROMPT_COMMAND and the DEBUG trap: use its arrays.
  [[ " ${preexec_functions[*]-} " == *" __nixld_preexec "* ]] ||
    preexec_functions+=(__nixld_preexec)
  [[ " ${precmd_functions[*]-} " == *" __nixld_precmd "* ]] ||
    precmd_functions=(__nixld_precmd ${precmd_functions[@]+"${precmd_functions[@]}"})
else
  # Look at every element: an array PROMPT_COMMAND joined by `[*]` hides ours.
  __nixld_found=
  for __nixld_pc in ${PROMPT_COMMAND[@]+"${PROMPT_COMMAND[@]}"}; do
    [[ $__nixld_pc == *__nixld_prompt* ]] && __nixld_found=1
  done
  if [[ -z $__nixld_found ]]; then
    if [[ ${PROMPT_COMMAND+${PROMPT_COMMAND@a}} == *a* ]]; then
      PROMPT_COMMAND=(__nixld_prompt "${PROMPT_COMMAND[@]}")
    elif [[ -n ${PROMPT_COMMAND-} ]]; then
      PROMPT_COMMAND=__nixld_prompt$'\n'$PROMPT_COMMAND
    else
      PROMPT_COMMAND=__nixld_prompt
    fi
  fi
  unset __nixld_found __nixld_pc
fi

fi
