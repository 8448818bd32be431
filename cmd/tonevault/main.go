// Command tonevault is ToneVault's one binary: the gateway and the tools
// that compliance teams, developers and tests run beside it.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand. run gets the arguments after the command's
// name and returns the process exit code.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands is filled by each subcommand's file in its init, so adding a
// subcommand touches one file only.
var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("tonevault: duplicate command " + c.name)
	}
	commands[c.name] = c
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.run([]string{"--help"}, stdout, stderr)
			}
		}
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tonevault: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "ToneVault: PCI DSS descoping payment capture for contact centres.")
	fmt.Fprintln(w, "\nUsage: tonevault <command> [arguments]\n\nCommands:")
	names := make([]string, 0, len(commands))
	width := 0
	for n := range commands {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s %s\n", width, n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'tonevault <command> --help' for a command's options.")
}

// subcommands dispatches a command group such as "dtmf scan".
func subcommands(group string, subs []command, args []string, stdout, stderr io.Writer) int {
	help := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: tonevault %s <command> [arguments]\n\nCommands:\n", group)
		for _, s := range subs {
			fmt.Fprintf(w, "  %-10s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(w, "\nRun 'tonevault %s <command> --help' for a command's options.\n", group)
	}
	if len(args) == 0 {
		help(stderr)
		return 2
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(args[1:], stdout, stderr)
		}
	}
	if a := strings.TrimLeft(args[0], "-"); a == "h" || a == "help" {
		help(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "tonevault %s: unknown command %q\n\n", group, args[0])
	help(stderr)
	return 2
}
