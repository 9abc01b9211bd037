package main

import (
	"fmt"
	"os"

	"github.com/capstanhq/capstan/gitsync"
)

// Secrets given on the command line (a token, a webhook secret) are read
// by every user of the machine in its process list (ps,
// /proc/PID/cmdline) for as long as the process runs; a flag FLAG-file
// takes them from a file instead.

// argvWarning is what a secret given as flag on the command line is
// told.
func argvWarning(flag string) string {
	return fmt.Sprintf("--%s on the command line is readable by every user of this machine (ps, /proc/PID/cmdline) while the process runs: write it to a file of mode 0600 and pass --%s-file FILE instead", flag, flag)
}

// readSecretFile reads the secret of --flag-file from path: a file that
// only its owner may read, less the white space around it.
func readSecretFile(flag, path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--%s-file: %w", flag, err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("--%s-file %s has mode %#o: other users may read it; run chmod 600 %s", flag, path, perm, path)
	}
	secret, err := gitsync.ReadCredential(path)
	if err != nil {
		return "", fmt.Errorf("--%s-file: %w", flag, err)
	}
	return secret, nil
}
