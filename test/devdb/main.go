// Command devdb prints a DATABASE_URL for `make run`: DATABASE_URL itself
// when it is set, else the URL of a persistent local PostgreSQL cluster that
// it starts (or finds running) in -data-dir.
//
// Stdout carries only the URL, one line, so that a Makefile can capture it
// with $(shell ...) or DATABASE_URL=$$(go run ./test/devdb); progress and
// errors go to stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/auditstore/auditstore/test/pgcluster"
)

func main() {
	dataDir := flag.String("data-dir", ".data/postgres", "directory of the persistent development cluster, relative to the working directory")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	if url := os.Getenv("DATABASE_URL"); url != "" {
		fmt.Println(url)
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	srv, err := pgcluster.Start(ctx, pgcluster.Options{
		DataDir: *dataDir,
		Logf:    func(format string, args ...any) { logger.Info(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		logger.Error("devdb: no development database", "err", err)
		os.Exit(1)
	}
	// No srv.Stop: the cluster is persistent and must keep running for the
	// app that `make run` starts next (Stop would do nothing anyway).
	fmt.Println(srv.URL)
}
