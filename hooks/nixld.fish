# nixld-hook for fish: after a command fails with 126/127 (a binary that could
# not start), or with 1 from a path (a library lacking a symbol version), ask
# `nixld-hook handle` what was missing. Sourced by the drop-in
# `nixld-hook install` writes to $XDG_CONFIG_HOME/fish/conf.d/nixld.fish, or
# `nixld-hook init fish | source`.
#
# fish_postexec fires only for a real command (not an empty Enter) and hands
# over the command line; with nothing failed it costs two builtins, no fork.
# Defining the function again replaces it, so sourcing twice adds nothing.

if status is-interactive
    set -q __nixld_bin; or set -g __nixld_bin nixld-hook

    function __nixld_postexec --on-event fish_postexec --description 'nixld-hook: explain a binary that could not start'
        set -l __nixld_ps $pipestatus
        if contains -- 127 $__nixld_ps
            __nixld_handle 127 $argv[1]
        else if contains -- 126 $__nixld_ps
            __nixld_handle 126 $argv[1]
        else if contains -- 1 $__nixld_ps
            # 1 is everyday, but also ld.so's exit for a library lacking a
            # symbol version: only a line that starts with a path is handed over.
            set -l __nixld_w (string trim -- $argv[1] | string split -f1 ' ')
            if string match -q '*/*' -- $__nixld_w
                __nixld_handle 1 $argv[1]
            end
        end
    end

    # Runs only after a failure: $argv = status, command line.
    function __nixld_handle
        if string match -q '*/*' -- $__nixld_bin; and not test -x $__nixld_bin
            return 0 # uninstalled: stay quiet
        end
        $__nixld_bin handle --shell fish --status $argv[1] --cwd $PWD -- $argv[2]
    end
end
