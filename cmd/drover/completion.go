package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

func completionCommand() *command {
	return &command{
		name:    "completion",
		args:    "bash",
		summary: "Print a bash completion script: source <(drover completion bash).",
		setup: func(fs *flag.FlagSet) runner {
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, 1, "shell (bash)"); err != nil {
					return err
				}
				if args[0] != "bash" {
					return usagef("only bash completion is available, not %q", args[0])
				}
				return writeBashCompletion(c.stdout)
			}
		},
	}
}

// writeBashCompletion completes subcommands, their flags, job states, and
// files for the flags that take one.
func writeBashCompletion(w io.Writer) error {
	var names []string
	var cases strings.Builder
	for _, cmd := range commands() {
		names = append(names, cmd.name)
		fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
		newCLI(nil, io.Discard, io.Discard, func(string) string { return "" }).registerGlobals(fs)
		cmd.setup(fs)
		var flags []string
		fs.VisitAll(func(f *flag.Flag) { flags = append(flags, "--"+f.Name) })
		sort.Strings(flags)
		fmt.Fprintf(&cases, "    %s) flags=%q ;;\n", cmd.name, strings.Join(flags, " "))
	}
	_, err := fmt.Fprintf(w, `# bash completion for drover; load with: source <(drover completion bash)
_drover() {
  local cur prev cmd flags i
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  cmd=""
  for ((i=1; i<COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      -*) ;;
      *) cmd="${COMP_WORDS[i]}"; break ;;
    esac
  done
  case "$prev" in
    --file|--config-file|--creds|--data|--bin-dir) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
    --state) COMPREPLY=( $(compgen -W "created pending running canceling finished failed canceled" -- "$cur") ); return ;;
    --kind) COMPREPLY=( $(compgen -W "jobmaster worker" -- "$cur") ); return ;;
  esac
  if [[ -z "$cmd" ]]; then
    if [[ "$cur" == -* ]]; then
      COMPREPLY=( $(compgen -W "--nats-url --creds --prefix --timeout --json" -- "$cur") )
    else
      COMPREPLY=( $(compgen -W "%s help" -- "$cur") )
    fi
    return
  fi
  case "$cmd" in
%s    *) flags="" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$flags" -- "$cur") )
  elif [[ "$cmd" == completion ]]; then
    COMPREPLY=( $(compgen -W "bash" -- "$cur") )
  fi
}
complete -F _drover drover
`, strings.Join(names, " "), cases.String())
	return err
}
