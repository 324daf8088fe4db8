//go:build !unix

package client

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens dir's lock file; without flock the caller must give each emitter a spool
// directory of its own.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return f, nil
}
