package maintain

import (
	"context"
	"log/slog"
	"time"
)

// VerifyEvery verifies the store against the integrity log every interval until ctx ends (the
// first time one interval after the start, so a restart loop does not verify over and over).
// Problems are logged and set the audit_integrity_* metrics that the alerts watch.
func (s *Service) VerifyEvery(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := s.Verify(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			slog.Error("integrity verification could not run", "error", err)
		case err == nil && !rep.OK:
			for i, p := range rep.Problems {
				if i == 20 {
					break
				}
				slog.Error("integrity problem", "kind", p.Kind, "detail", p.Detail)
			}
			slog.Error("integrity verification found problems", "problems", rep.ProblemCount, "events", rep.Events)
		case err == nil:
			slog.Info("integrity verified", "events", rep.Events, "leaves", rep.Leaves, "duration", rep.Duration)
		}
	}
}
