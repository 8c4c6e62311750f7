package main

import (
	"context"
	"fmt"
	"io"
	"strings"
)

const completionUsage = `
Prints a completion script for bash or zsh, made from the same command list
as 'pyrite help': commands, subcommands and the global flags.

  bash:  source <(pyrite completion bash)      (or save it in /etc/bash_completion.d/pyrite)
  zsh:   pyrite completion zsh > "${fpath[1]}/_pyrite"   (then restart zsh)

Exit code 0, 2 on usage errors.`

func runCompletion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newOpsFlagSet("pyrite completion", "pyrite completion bash|zsh", completionUsage, stderr)
	pos, err := parseArgs(fs, args, 1, "SHELL")
	if err != nil {
		return err
	}
	tree := completionTree(topCommands())
	switch pos[0] {
	case "bash":
		_, err = io.WriteString(stdout, bashCompletion(tree))
	case "zsh":
		_, err = io.WriteString(stdout, zshCompletion(tree))
	default:
		fs.Usage()
		return fmt.Errorf("%w: pyrite completion: %q is not bash or zsh", errUsage, pos[0])
	}
	return err
}

// completionNode is a command path ("" for pyrite itself, "schema readers") and the
// commands under it.
type completionNode struct {
	path     string
	children []command
}

// completionTree lists every command path that has children, parents first.
func completionTree(cmds []command) []completionNode {
	var out []completionNode
	var walk func(path string, cs []command)
	walk = func(path string, cs []command) {
		out = append(out, completionNode{path: path, children: cs})
		for _, c := range cs {
			if len(c.subs) > 0 {
				walk(strings.TrimSpace(path+" "+c.name), c.subs)
			}
		}
	}
	walk("", append(cmds, command{name: "help", summary: "list every command, or a command's flags"}))
	return out
}

func completionFlags() string {
	return strings.ReplaceAll(globalFlagNames(), ",", "") + " --help"
}

func bashCompletion(tree []completionNode) string {
	var b strings.Builder
	b.WriteString("# bash completion for pyrite: source <(pyrite completion bash)\n")
	b.WriteString("_pyrite_children() {\n  case \"$1\" in\n")
	for _, n := range tree {
		var names []string
		for _, c := range n.children {
			names = append(names, c.name)
		}
		fmt.Fprintf(&b, "    %q) echo %q ;;\n", n.path, strings.Join(names, " "))
	}
	b.WriteString("  esac\n}\n")
	fmt.Fprintf(&b, `_pyrite() {
  local cur=${COMP_WORDS[COMP_CWORD]} path="" w i c
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    [[ $w == -* ]] && continue
    for c in $(_pyrite_children "$path"); do
      if [[ $c == "$w" ]]; then path=${path:+$path }$w; break; fi
    done
  done
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W %q -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_pyrite_children "$path")" -- "$cur"))
  fi
}
complete -o default -F _pyrite pyrite
`, completionFlags())
	return b.String()
}

func zshCompletion(tree []completionNode) string {
	var b strings.Builder
	b.WriteString("#compdef pyrite\n# zsh completion for pyrite: pyrite completion zsh > \"${fpath[1]}/_pyrite\"\n")
	b.WriteString("_pyrite_children() {\n  case \"$1\" in\n")
	for _, n := range tree {
		var items []string
		for _, c := range n.children {
			items = append(items, zshQuote(c.name+":"+c.summary))
		}
		fmt.Fprintf(&b, "    %s) reply=(%s) ;;\n", zshQuote(n.path), strings.Join(items, " "))
	}
	b.WriteString("    *) reply=() ;;\n  esac\n}\n")
	fmt.Fprintf(&b, `_pyrite() {
  local p="" w i c
  local -a reply
  for ((i = 2; i < CURRENT; i++)); do
    w=${words[i]}
    [[ $w == -* ]] && continue
    _pyrite_children "$p"
    for c in "${reply[@]}"; do
      if [[ ${c%%%%:*} == "$w" ]]; then p=${p:+$p }$w; break; fi
    done
  done
  if [[ ${words[CURRENT]} == -* ]]; then
    compadd -- %s
    return
  fi
  _pyrite_children "$p"
  (( ${#reply} )) && _describe -t commands 'pyrite command' reply
}
_pyrite "$@"
`, completionFlags())
	return b.String()
}

// zshQuote single-quotes s for zsh.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
