package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/auditstore/auditstore/migrations"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// dbPrefix starts the name of every database the load generator creates (and drops).
const dbPrefix = "auditstore_loadgen_"

// server makes fresh databases on the server of the maintenance-database URL base.
type server struct {
	base string
}

// fresh creates a new database, migrates it and returns its URL and a function that drops
// it. Before it returns it asks for a CHECKPOINT, so that a measurement does not pay for
// flushing what the one before it wrote.
func (s server) fresh(ctx context.Context) (string, func(), error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := dbPrefix + hex.EncodeToString(b)
	admin, err := pgx.Connect(ctx, s.base)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", redact(s.base), err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, s.base)
		if err == nil {
			defer c.Close(ctx)
			_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		}
		if err != nil {
			logf("drop database %s: %v", name, err)
		}
	}
	u := withDatabase(s.base, name)
	if err := migrations.Up(u); err != nil {
		drop()
		return "", nil, err
	}
	if _, err := admin.Exec(ctx, "CHECKPOINT"); err != nil {
		logf("CHECKPOINT refused (%v); measurements may pay for earlier writes", err)
	}
	return u, drop, nil
}

// openPool opens a pool of at most conns connections.
func openPool(ctx context.Context, databaseURL string, conns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = conns
	return pgxpool.NewWithConfig(ctx, cfg)
}

// countRows returns the number of rows of audit_events.
func countRows(ctx context.Context, databaseURL string) (int64, error) {
	c, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var n int64
	err = c.QueryRow(ctx, "SELECT count(*) FROM audit_events").Scan(&n)
	return n, err
}

// serverPids returns the pids of the server's processes that work for the database of
// databaseURL: its backends and autovacuum workers, and the background processes every
// database shares (WAL writer, checkpointer, background writer), but not the backends of other
// databases.
func serverPids(ctx context.Context, databaseURL string) ([]int, error) {
	c, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE (datname = current_database() OR datname IS NULL) AND pid <> pg_backend_pid()`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

// serverVersion returns the server's version string.
func serverVersion(ctx context.Context, base string) (string, error) {
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact(base), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	var v string
	err = c.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

func withDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err) // checked in main
	}
	u.Path = "/" + name
	return u.String()
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
