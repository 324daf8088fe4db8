package archive

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// A lookup filter holds every value it was built from, in its column only, and answers "may
// hold" for about 1% of values it was not: the rate its size (10 bits a value) is chosen for.
func TestLookupFilter(t *testing.T) {
	t.Parallel()
	add, filter := LookupFilterOf()
	for i := range 500 {
		add(&ColdRow{CorrelationID: fmt.Sprintf("rr-%d", i), ActorID: fmt.Sprintf("svc-%d", i%10), EventType: fmt.Sprintf("svc.obj.act%d", i%100)})
	}
	f := filter()
	require.Equal(t, 1024, len(f), "610 values at 10 bits each: 8,192 bits")
	for i := range 500 {
		require.True(t, LookupFilterHas(f, "correlation_id", fmt.Sprintf("rr-%d", i)))
	}
	require.True(t, LookupFilterHas(f, "actor_id", "svc-3"))
	require.True(t, LookupFilterHas(f, "event_type", "svc.obj.act42"))
	var fp int
	for i := range 10000 {
		if LookupFilterHas(f, "correlation_id", fmt.Sprintf("absent-%d", i)) {
			fp++
		}
		if LookupFilterHas(f, "actor_id", fmt.Sprintf("rr-%d", i%500)) { // a value of another column
			fp++
		}
	}
	require.Less(t, fp, 400, "false positives among 20,000 absent values")
}
