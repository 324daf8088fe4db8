// Command write runs the write function alone (one Knative Service).
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	function.Config
	// MaxConns bounds the pool.
	MaxConns int32 `envconfig:"WRITE_MAX_CONNS" default:"8"`
	Write    write.Config
}

func main() {
	// The write path makes short-lived garbage at a steady rate with a small live heap: half
	// as many collections (GOGC 200) cost the CPU under load a few percent less. The soft
	// limit makes the collector work harder well before the container's 512 MiB limit, which
	// many 5 MiB batches at once could otherwise approach. GOGC and GOMEMLIMIT in the
	// environment override both.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(384 << 20)
	}
	web.Main("write", run)
}

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	s, closeDB, err := function.OpenStore(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: cfg.MaxConns, Writes: true})
	if err != nil {
		return err
	}
	defer closeDB()
	srv, err := function.NewServer(cfg.Config)
	if err != nil {
		return err
	}
	h, err := write.Open(ctx, srv, s, cfg.Write)
	if err != nil {
		return err
	}
	defer h.Close() // after the server stopped: finish queued commits
	return srv.Serve(ctx, srv.Writable(s.PingWritable), h.Routes)
}
