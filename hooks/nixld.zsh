# nixld-hook for zsh: after a command fails with 126/127 (a binary that could
# not start), or with 1 from a path (a library lacking a symbol version), ask
# `nixld-hook handle` what was missing. Sourced by the block
# `nixld-hook install` adds to ${ZDOTDIR:-$HOME}/.zshrc, or
# `eval "$(nixld-hook init zsh)"`.
#
# With nothing failed a prompt costs a few builtins: no fork, no subshell.
# Safe to source twice and under `setopt nounset`; other precmd/preexec hooks
# and an existing command_not_found_handler keep working; interactive only.

if [[ -o interactive ]]; then

typeset -g __nixld_line='' __nixld_armed=''

# preexec runs only for a real command (not an empty Enter); $3 is the full
# text about to run, aliases expanded.
__nixld_preexec() {
  __nixld_line=${3-${1-}}
  __nixld_armed=1
}

__nixld_precmd() {
  local __nixld_s=$? __nixld_ps="${pipestatus[*]}"
  [[ -n $__nixld_armed ]] || return $__nixld_s
  __nixld_armed=''
  case " $__nixld_ps " in
    (*" 127 "*) __nixld_handle 127 "$__nixld_line" ;;
    (*" 126 "*) __nixld_handle 126 "$__nixld_line" ;;
    # 1 is everyday (grep, false), but also ld.so's exit for a library lacking
    # a symbol version: hand it over only for a line that starts with a path.
    (*" 1 "*) [[ ${${(Az)__nixld_line}[1]-} != */* ]] || __nixld_handle 1 "$__nixld_line" ;;
  esac
  return $__nixld_s
}

# Runs only after a failure. localtraps restores the user's INT trap after.
__nixld_handle() {
  setopt localoptions localtraps
  local __nixld_tool=${__nixld_bin:-nixld-hook}
  [[ $__nixld_tool == */* && ! -x $__nixld_tool ]] && return 0  # uninstalled: stay quiet
  trap '' INT
  "$__nixld_tool" handle --shell zsh --status "$1" --cwd "$PWD" -- "$2"
}

typeset -ga precmd_functions preexec_functions
(( ${precmd_functions[(I)__nixld_precmd]} )) ||
  precmd_functions=(__nixld_precmd $precmd_functions)
(( ${preexec_functions[(I)__nixld_preexec]} )) ||
  preexec_functions+=(__nixld_preexec)

# zsh also calls command_not_found_handler when a file found on PATH fails to
# exec (its ELF interpreter is missing): that is not "not found", and precmd
# explains it; any other name goes to the handler that was there before.
if [[ ${functions[command_not_found_handler]-} != *__nixld_* ]]; then
  if (( ${+functions[command_not_found_handler]} )); then
    functions[__nixld_previous_cnf]=${functions[command_not_found_handler]}
  fi
  command_not_found_handler() {
    if [[ $1 != */* && -n ${commands[$1]-} ]]; then
      print -ru2 -- "zsh: cannot execute: required file not found: $1"
      return 127
    fi
    if (( ${+functions[__nixld_previous_cnf]} )); then
      __nixld_previous_cnf "$@"
      return
    fi
    print -ru2 -- "zsh: command not found: $1"
    return 127
  }
fi

fi
