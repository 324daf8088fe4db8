package maintain_test

import (
	"context"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// service is the maintenance service with the function's API over it, as the maintain
// command wires them.
type service struct {
	*lifecycle.Service
	*maintain.Handler
}

// newService wires the service over pool and the function over it, as the command does.
func newService(pool *pgxpool.Pool, cfg lifecycle.Config, classes []int, reg prometheus.Registerer, az auth.Authorizer, am *auth.Metrics) service {
	svc := lifecycle.NewService(store.New(pool), cfg, classes, reg)
	return service{svc, maintain.New(svc, reg, az, am)}
}

// open opens the service on databaseURL and the function over it, as the command does.
func open(ctx context.Context, databaseURL string, cfg lifecycle.ServiceConfig, reg prometheus.Registerer) (service, func(), error) {
	svc, closeDB, err := lifecycle.Open(ctx, databaseURL, cfg, reg)
	if err != nil {
		return service{}, nil, err
	}
	return service{svc, maintain.New(svc, reg, nil, nil)}, closeDB, nil
}
