// Command vault is HashiCorp Vault's server built from the Go module proxy,
// for ToneVault's tests and local runs only. It lives in its own nested
// module so that none of Vault's dependencies reach the gateway's go.mod.
// Vault's server code is BUSL-licensed: this binary is a test tool and is
// never shipped with ToneVault.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
