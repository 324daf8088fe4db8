// Command verify checks tamper evidence and exits non-zero when it finds a problem (or cannot
// check): with the database (DATABASE_URL), every stored event against the integrity log,
// every checkpoint's signature and root, and the checkpoint copies at CHECKPOINT_URL; with
// -archive, every archived partition at ARCHIVE_URL offline, without the database. It prints
// one JSON report per check (the database's, or one per partition).
//
//	verify                              # the database
//	verify -archive                     # every partition archived at ARCHIVE_URL
//	verify -archive -partition audit_events_r90_2026_05
//
// -archive also verifies every file of the cold tier (months moved to ARCHIVE_URL before they
// expired, HOT_MONTHS): its bytes and rows against its manifest and every event against the
// hash stored with it, naming the file; with DATABASE_URL set too, every cold event against the
// hash the integrity log sealed for it.
//
// The trusted keys are INTEGRITY_PUBLIC_KEYS (and INTEGRITY_SIGNING_KEY's, when set).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/google/uuid"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	// DatabaseURL names the database (postgres:// URL), as a role with auditstore_maintainer
	// or auditstore_reader; not needed with -archive.
	DatabaseURL string `envconfig:"DATABASE_URL"`
	// ArchiveURL is where archived partitions are (for -archive).
	ArchiveURL string `envconfig:"ARCHIVE_URL"`
	Maintain   lifecycle.ServiceConfig
}

func main() { web.Main("verify", run) }

func run(ctx context.Context) error {
	offline := flag.Bool("archive", false, "verify archived partitions at ARCHIVE_URL offline instead of the database")
	partition := flag.String("partition", "", "with -archive: only this partition, e.g. audit_events_r90_2026_05")
	flag.Parse()
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	_, keys, err := cfg.Maintain.Integrity.Keys()
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		fmt.Fprintln(os.Stderr, "verify: no INTEGRITY_PUBLIC_KEYS or INTEGRITY_SIGNING_KEY: checkpoint signatures are not checked")
	}
	out := json.NewEncoder(os.Stdout)
	if *offline {
		var sealed archive.LeafHashes
		if cfg.DatabaseURL != "" && *partition == "" {
			st, err := store.Connect(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: 2})
			if err != nil {
				return err
			}
			defer st.Close()
			sealed = leafHashes(st)
		}
		return verifyArchives(ctx, cfg.ArchiveURL, *partition, keys, sealed, out)
	}
	if cfg.DatabaseURL == "" {
		return errors.New("DATABASE_URL is required (or -archive)")
	}
	svc, closeDB, err := lifecycle.Open(ctx, cfg.DatabaseURL, cfg.Maintain, nil)
	if err != nil {
		return err
	}
	defer closeDB()
	rep, err := svc.Keeper().Verify(ctx)
	if err != nil {
		return err
	}
	if err := out.Encode(rep); err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("%d integrity problems found", rep.ProblemCount)
	}
	return nil
}

func verifyArchives(ctx context.Context, url, only string, keys []integrity.PublicKey, sealed archive.LeafHashes, out *json.Encoder) error {
	if url == "" {
		return errors.New("ARCHIVE_URL is required with -archive")
	}
	arch, err := archive.Open(ctx, url, archive.Options{})
	if err != nil {
		return err
	}
	defer arch.Close()
	var parts []archive.Partition
	if only != "" {
		p, err := archive.ParsePartition(only)
		if err != nil {
			return err
		}
		parts = []archive.Partition{p}
	} else if parts, err = arch.Partitions(ctx); err != nil {
		return err
	}
	problems := 0
	for _, p := range parts {
		rep, err := arch.Verify(ctx, p, keys)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		problems += rep.ProblemCount
		if err := out.Encode(struct {
			Partition string `json:"partition"`
			ledger.Report
		}{p.Name, rep}); err != nil {
			return err
		}
	}
	coldFiles := 0
	if only == "" {
		cold := arch.Cold(archive.ColdOptions{})
		files, err := cold.Manifests(ctx)
		if err != nil {
			return err
		}
		for _, f := range files {
			rep, err := cold.VerifyCold(ctx, f, sealed)
			if err != nil {
				return fmt.Errorf("%s: %w", f.Key, err)
			}
			problems += rep.ProblemCount
			coldFiles++
			if err := out.Encode(struct {
				ColdFile string `json:"cold_file"`
				ledger.Report
			}{f.Key, rep}); err != nil {
				return err
			}
		}
	}
	if problems > 0 {
		return fmt.Errorf("%d integrity problems found in %d archived partitions and %d cold files", problems, len(parts), coldFiles)
	}
	return nil
}

// leafHashes reads the hashes the integrity log sealed for events.
func leafHashes(st *store.Store) archive.LeafHashes {
	return func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]integrity.Hash, error) {
		leaves, err := st.LeavesOf(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make(map[uuid.UUID]integrity.Hash, len(leaves))
		for _, l := range leaves {
			out[l.EventID] = l.EventHash
		}
		return out, nil
	}
}
