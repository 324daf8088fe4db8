// Command restore loads an archived month of audit events back into a table of its own, for an
// investigation. It first verifies the archive against its manifest (every file's size and
// SHA-256, its rows' count and digest), then COPYs the events into a new table shaped like
// audit_events but outside its partition tree (see store.RestoreEvents), in one transaction, and
// prints what it did as JSON. Drop the table when the investigation ends.
//
//	DATABASE_URL=postgres://... ARCHIVE_URL=file:///var/lib/auditstore-archive \
//	  restore -partition audit_events_r90_2026_05 [-table audit_restore_case_4711]
//	restore -class 90 -month 2026-05
//	restore -partition audit_events_r90_2026_05 -verify-only
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	// DatabaseURL names the database (postgres:// URL), as a role that may create tables.
	DatabaseURL string `envconfig:"DATABASE_URL"`
	// ArchiveURL is the archive to read (gocloud.dev/blob URL, as maintenance's ARCHIVE_URL).
	ArchiveURL string `envconfig:"ARCHIVE_URL"`
}

// summary is what restore prints.
type summary struct {
	Partition         string     `json:"partition"`
	Manifest          string     `json:"manifest"`
	Table             string     `json:"table,omitempty"`
	ArchivedRows      int64      `json:"archived_rows"`
	LoadedRows        int64      `json:"loaded_rows"`
	Files             int        `json:"files"`
	Bytes             int64      `json:"bytes"`
	MinEventTimestamp *time.Time `json:"min_event_timestamp"`
	MaxEventTimestamp *time.Time `json:"max_event_timestamp"`
	ArchivedAt        time.Time  `json:"archived_at"`
	Verified          bool       `json:"verified"`
}

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "restore:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	partition := fs.String("partition", "", "the partition to restore, e.g. audit_events_r90_2026_05 (or -class and -month)")
	class := fs.Int("class", 0, "retention class in days, with -month")
	month := fs.String("month", "", "month as YYYY-MM, with -class")
	table := fs.String("table", "", "table to create (default audit_restore_r<class>_<yyyy>_<mm>); must start with audit_restore_")
	archiveURL := fs.String("archive", cfg.ArchiveURL, "archive URL (default $ARCHIVE_URL)")
	databaseURL := fs.String("database", cfg.DatabaseURL, "database URL (default $DATABASE_URL)")
	tempDir := fs.String("temp-dir", "", "where to download the archive's files (default the system's temporary directory)")
	verifyOnly := fs.Bool("verify-only", false, "verify the archive and load nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; flags only (see -h)", fs.Arg(0))
	}

	var p archive.Partition
	switch {
	case *partition != "" && (*class != 0 || *month != ""):
		return errors.New("-partition or -class and -month, not both")
	case *partition != "":
		var err error
		if p, err = archive.ParsePartition(*partition); err != nil {
			return fmt.Errorf("-partition: %w", err)
		}
	case *class > 0 && *month != "":
		m, err := time.Parse("2006-01", *month)
		if err != nil {
			return fmt.Errorf("-month %q is not YYYY-MM", *month)
		}
		p = archive.PartitionOf(*class, m)
	default:
		return errors.New("-partition (e.g. audit_events_r90_2026_05) or -class and -month (e.g. -class 90 -month 2026-05) is required")
	}
	if *table == "" {
		*table = "audit_restore_" + strings.TrimPrefix(p.Name, "audit_events_")
	}
	if *archiveURL == "" {
		return errors.New("ARCHIVE_URL (or -archive) is required: the archive to read, e.g. file:///var/lib/auditstore-archive")
	}
	if *databaseURL == "" && !*verifyOnly {
		return errors.New("DATABASE_URL (or -database) is required")
	}

	a, err := archive.Open(ctx, *archiveURL, archive.Options{TempDir: *tempDir})
	if err != nil {
		return fmt.Errorf("ARCHIVE_URL: %w", err)
	}
	defer a.Close()
	c, err := a.Fetch(ctx, p)
	if err != nil {
		return err
	}
	defer c.Close()
	m := c.Manifest
	sum := summary{Partition: p.Name, Manifest: p.ManifestKey(), ArchivedRows: m.RowCount, Files: len(m.Files), Bytes: m.Bytes(),
		MinEventTimestamp: m.MinEventTimestamp, MaxEventTimestamp: m.MaxEventTimestamp, ArchivedAt: m.CreatedAt, Verified: true}
	if !*verifyOnly {
		s, err := store.Connect(ctx, *databaseURL, store.PoolOptions{MaxConns: 2})
		if err != nil {
			return err
		}
		defer s.Close()
		n, err := s.RestoreEvents(ctx, store.RestoreParams{Table: *table, Events: c.Events(), Rows: m.RowCount})
		if err != nil {
			return err
		}
		sum.Table, sum.LoadedRows = *table, n
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(sum)
}
