package integrity

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The member digests take the ends the scan recorded, unsorted members and a payload object
// among them, and commit the same as when they read every value's end; ends that do not fit
// the bytes are not taken.
func TestCanonicalCommit_TakesTheLayout(t *testing.T) {
	t.Parallel()
	raw := []byte(`{"version":"1.0","service":"gateway","status":"ok","payload":{"z":[1,{"a":"}"}],"labels":{"b":"x","a":"y"},"n":-1.5},"attempt":2}`)
	d, err := ParseData(raw, 32, 1<<20)
	require.NoError(t, err)
	require.Len(t, d.Layout.members, 5)
	require.Len(t, d.Layout.payload, 3)
	key := make([]byte, SaltKeySize)
	commit := func(l Layout) (string, bool) {
		cc := commitPool.Get().(*canonicalCommit)
		defer cc.release()
		_, _, out, ok := cc.commit(key, "actor", nil, d.Hashed, l)
		return string(out), ok
	}
	read, ok := commit(Layout{})
	require.True(t, ok)
	laidOut, ok := commit(d.Layout)
	require.True(t, ok, "the recorded layout is taken")
	require.Equal(t, read, laidOut)

	shifted := Layout{members: append([]int32(nil), d.Layout.members...), payload: d.Layout.payload}
	shifted.members[1]++
	_, ok = commit(shifted)
	require.False(t, ok, "an end that is no member's end")
	_, ok = commit(Layout{members: d.Layout.members[:4], payload: d.Layout.payload})
	require.False(t, ok, "too few ends")
}
