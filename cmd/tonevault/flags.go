package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// parseOptions parses the flags of a command that takes no operands: after
// --help it prints usage and says stop (0); a bad flag or an operand is a
// usage error (2).
func parseOptions(fs *flag.FlagSet, cmd, usage string, args []string, stdout, stderr io.Writer) (int, bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		io.WriteString(stdout, usage)
		return 0, false
	case err != nil:
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	default:
		return 0, true
	}
	fmt.Fprintf(stderr, "tonevault %s: %v\nRun 'tonevault %s --help' for details.\n", cmd, err, cmd)
	return 2, false
}
