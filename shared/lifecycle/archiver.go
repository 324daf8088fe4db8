package lifecycle

import (
	"context"
	"fmt"
	"sync"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/store"
)

// archiver archives partitions at ARCHIVE_URL for the runner. It opens the bucket on first use,
// so a bucket that cannot be opened fails a run (and keeps its partitions), not the process.
type archiver struct {
	url   string
	store *store.Store

	mu      sync.Mutex
	archive *archive.Archive
}

// Archive writes (or finds and verifies) the archive of leaf.
func (a *archiver) Archive(ctx context.Context, leaf store.LeafPartition) (Archived, error) {
	a.mu.Lock()
	if a.archive == nil {
		arch, err := archive.Open(ctx, a.url, archive.Options{})
		if err != nil {
			a.mu.Unlock()
			return Archived{}, fmt.Errorf("ARCHIVE_URL: %w", err)
		}
		a.archive = arch
	}
	arch := a.archive
	a.mu.Unlock()
	p := archive.Partition{Name: leaf.Name, Class: leaf.Class, Month: leaf.Month}
	r, err := arch.Ensure(ctx, p, a.store)
	if err != nil {
		return Archived{}, err
	}
	return Archived{Rows: r.Manifest.RowCount, Bytes: r.Manifest.Bytes(), LeafRows: r.LeafRows,
		Reused: r.Reused, Location: p.ManifestKey()}, nil
}
