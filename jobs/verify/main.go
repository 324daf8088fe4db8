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
	"github.com/auditstore/auditstore/shared/web"
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
		return verifyArchives(ctx, cfg.ArchiveURL, *partition, keys, out)
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

func verifyArchives(ctx context.Context, url, only string, keys []integrity.PublicKey, out *json.Encoder) error {
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
	if problems > 0 {
		return fmt.Errorf("%d integrity problems found in %d archived partitions", problems, len(parts))
	}
	return nil
}
