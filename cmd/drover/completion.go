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
		args:    "bash|zsh|fish",
		summary: "Print a completion script: source <(drover completion bash); zsh: source <(drover completion zsh); fish: drover completion fish | source.",
		setup: func(fs *flag.FlagSet) runner {
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, 1, "shell (bash, zsh or fish)"); err != nil {
					return err
				}
				switch args[0] {
				case "bash":
					return writeBashCompletion(c.stdout)
				case "zsh":
					return writeZshCompletion(c.stdout)
				case "fish":
					return writeFishCompletion(c.stdout)
				}
				return usagef("no completion for %q: bash, zsh or fish", args[0])
			}
		},
	}
}

// completable are the commands shown to people, each with its flags
// (without leading dashes), sorted.
func completable() (cmds []*command, flags map[string][]string, globals []string) {
	flags = map[string][]string{}
	g := flag.NewFlagSet("drover", flag.ContinueOnError)
	newCLI(nil, io.Discard, io.Discard, func(string) string { return "" }).registerGlobals(g)
	g.VisitAll(func(f *flag.Flag) { globals = append(globals, f.Name) })
	sort.Strings(globals)
	for _, cmd := range commands() {
		if cmd.hidden {
			continue
		}
		cmds = append(cmds, cmd)
		fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
		newCLI(nil, io.Discard, io.Discard, func(string) string { return "" }).registerGlobals(fs)
		cmd.setup(fs)
		fs.VisitAll(func(f *flag.Flag) { flags[cmd.name] = append(flags[cmd.name], f.Name) })
		sort.Strings(flags[cmd.name])
	}
	return cmds, flags, globals
}

// dashed writes each flag as the shell sees it: -s, --server.
func dashed(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "--" + n
		if len(n) == 1 {
			out[i] = "-" + n
		}
	}
	return strings.Join(out, " ")
}

// fileFlags take a file or directory; stateValues are what --state takes.
const (
	fileFlags   = "--file|--config-file|--creds|--data|--bin-dir|--tlscert|--tlskey|--tlsca"
	stateValues = "created pending running canceling finished failed canceled"
)

// writeBashCompletion completes subcommands, their flags, job states, and
// files for the flags that take one.
func writeBashCompletion(w io.Writer) error {
	cmds, flags, globals := completable()
	var names []string
	var cases strings.Builder
	for _, cmd := range cmds {
		names = append(names, cmd.name)
		fmt.Fprintf(&cases, "    %s) flags=%q ;;\n", cmd.name, dashed(flags[cmd.name]))
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
    %s) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
    --state) COMPREPLY=( $(compgen -W "%s" -- "$cur") ); return ;;
    --kind) COMPREPLY=( $(compgen -W "jobmaster worker" -- "$cur") ); return ;;
  esac
  if [[ -z "$cmd" ]]; then
    if [[ "$cur" == -* ]]; then
      COMPREPLY=( $(compgen -W "%s" -- "$cur") )
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
    COMPREPLY=( $(compgen -W "bash zsh fish" -- "$cur") )
  fi
}
complete -F _drover drover
`, fileFlags, stateValues, dashed(globals), strings.Join(names, " "), cases.String())
	return err
}

// writeZshCompletion completes subcommands with their summaries, their
// flags, job states, and files for the flags that take one.
func writeZshCompletion(w io.Writer) error {
	cmds, flags, globals := completable()
	var described, cases strings.Builder
	for _, cmd := range cmds {
		fmt.Fprintf(&described, "    %s\n", zshQuote(cmd.name+":"+cmd.summary))
		fmt.Fprintf(&cases, "    %s) flags=(%s) ;;\n", cmd.name, dashed(flags[cmd.name]))
	}
	_, err := fmt.Fprintf(w, `#compdef drover
# zsh completion for drover; load with: source <(drover completion zsh)
_drover() {
  local -a commands flags
  commands=(
%s  )
  local cmd="" i
  for ((i=2; i<CURRENT; i++)); do
    case "${words[i]}" in
      -*) ;;
      *) cmd="${words[i]}"; break ;;
    esac
  done
  case "${words[CURRENT-1]}" in
    %s) _files; return ;;
    --state) compadd -- %s; return ;;
    --kind) compadd -- jobmaster worker; return ;;
  esac
  if [[ -z "$cmd" ]]; then
    if [[ "${words[CURRENT]}" == -* ]]; then
      compadd -- %s
    else
      _describe 'command' commands
    fi
    return
  fi
  case "$cmd" in
%s    *) flags=() ;;
  esac
  if [[ "${words[CURRENT]}" == -* ]]; then
    compadd -- $flags
  elif [[ "$cmd" == completion ]]; then
    compadd -- bash zsh fish
  fi
}
compdef _drover drover
`, described.String(), fileFlags, stateValues, dashed(globals), cases.String())
	return err
}

func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// writeFishCompletion completes subcommands with their summaries and each
// command's flags.
func writeFishCompletion(w io.Writer) error {
	cmds, flags, _ := completable()
	var b strings.Builder
	b.WriteString("# fish completion for drover; load with: drover completion fish | source\n")
	b.WriteString("complete -c drover -f\n")
	var names []string
	for _, cmd := range cmds {
		names = append(names, cmd.name)
	}
	for _, cmd := range cmds {
		fmt.Fprintf(&b, "complete -c drover -n 'not __fish_seen_subcommand_from %s' -a %s -d %s\n",
			strings.Join(names, " "), cmd.name, fishQuote(cmd.summary))
		for _, f := range flags[cmd.name] {
			opt := "-l " + f
			if len(f) == 1 {
				opt = "-s " + f
			}
			extra := ""
			switch f {
			case "file", "config-file", "creds", "data", "bin-dir", "tlscert", "tlskey", "tlsca":
				extra = " -r -F"
			case "state":
				extra = " -x -a " + fishQuote(stateValues)
			case "kind":
				extra = " -x -a 'jobmaster worker'"
			}
			fmt.Fprintf(&b, "complete -c drover -n '__fish_seen_subcommand_from %s' %s%s\n", cmd.name, opt, extra)
		}
	}
	b.WriteString("complete -c drover -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func fishQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
