package cold

import (
	"context"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/store"
)

// summarize gives the files recorded without a lookup filter (written before filters existed)
// theirs, read from the file (and checked on the way), so from the next query on a lookup reads
// them only when they may hold its key. Until then every lookup reads them, as before.
func (m *Mover) summarize(ctx context.Context, files []store.ColdFile, expired func(class int, month time.Time) bool, acts []Action) ([]Action, error) {
	for _, f := range files {
		if f.LookupFilter != nil || expired(f.Class, f.Month) {
			continue
		}
		add, filter := archive.LookupFilterOf()
		if err := m.Tier.Scan(ctx, file(f), func(r *archive.ColdRow) error {
			add(r)
			return nil
		}); err != nil {
			return acts, fmt.Errorf("lookup filter of cold file %s: %w", f.Key, err)
		}
		if err := m.Store.SetColdLookupFilter(ctx, f.Key, filter()); err != nil {
			return acts, err
		}
		acts = append(acts, Action{Kind: "cold.summarized", Partition: f.Key, Rows: f.Rows})
	}
	return acts, nil
}
