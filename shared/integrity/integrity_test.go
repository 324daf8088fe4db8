package integrity_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/stretchr/testify/require"
)

func TestCanonicalizeRFC8785(t *testing.T) {
	t.Parallel()
	// RFC 8785 §3.2.4's example, whose expected output the RFC prints.
	in := `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`
	want := `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`
	got, err := integrity.Canonicalize([]byte(in))
	require.NoError(t, err)
	require.Equal(t, want, string(got))

	// RFC 8785 §3.2.3: member order by UTF-16 code units.
	got, err = integrity.Canonicalize([]byte(`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`))
	require.NoError(t, err)
	require.Equal(t, "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"דּ\":\"Hebrew Letter Dalet With Dagesh\"}", string(got))

	got, err = integrity.Canonicalize([]byte(`{"b":1,"event_hash":"x","a":{"event_hash":2}}`), "event_hash")
	require.NoError(t, err)
	require.Equal(t, `{"a":{"event_hash":2},"b":1}`, string(got), "only top-level members are dropped")

	got, err = integrity.Canonicalize([]byte(`{"a":1,"a":2}`))
	require.NoError(t, err)
	require.Equal(t, `{"a":2}`, string(got), "the last of a repeated member, as jsonb keeps")

	for _, bad := range []string{`{"a":1e400}`, "{\"a\":\"\xff\"}", `{"a":1} x`, `{"a":`} {
		_, err := integrity.Canonicalize([]byte(bad))
		require.Error(t, err, bad)
	}
}

func TestFormatNumber(t *testing.T) {
	t.Parallel()
	// ECMAScript Number.prototype.toString, from RFC 8785 Appendix B's table.
	for f, want := range map[float64]string{
		0: "0", 1: "1", -1: "-1", 5e-324: "5e-324", 1.7976931348623157e308: "1.7976931348623157e+308",
		9007199254740992: "9007199254740992", 9007199254740994: "9007199254740994",
		295147905179352830000: "295147905179352830000", 1e21: "1e+21", 1e20: "100000000000000000000",
		1e-7: "1e-7", 0.000001: "0.000001", 123.456: "123.456", -0.5: "-0.5", 1.5e-10: "1.5e-10",
		4.35: "4.35", 0.30000000000000004: "0.30000000000000004", 1e23: "1e+23",
	} {
		require.Equal(t, want, integrity.FormatNumber(f), "%v", f)
	}
}

func TestEventHashIgnoresSpellingAndIntegrityFields(t *testing.T) {
	t.Parallel()
	a, err := integrity.EventHash([]byte(`{"event_id":"x","event_data":{"n":1.50,"s":"\u00e9"},"event_hash":"aa","hash_version":1}`))
	require.NoError(t, err)
	b, err := integrity.EventHash([]byte(`{"event_data": {"s": "é", "n": 1.5}, "event_id": "x"}`))
	require.NoError(t, err)
	require.Equal(t, a, b)
	c, err := integrity.EventHash([]byte(`{"event_data":{"s":"é","n":1.6},"event_id":"x"}`))
	require.NoError(t, err)
	require.NotEqual(t, a, c)
}

// TestEventHashAbsentIsNull: the API leaves absent optional fields out, and version 1 of the
// encoding hashed them as null, so both spellings of one event hash alike, and a value does not.
func TestEventHashAbsentIsNull(t *testing.T) {
	t.Parallel()
	omitted, err := integrity.EventHash([]byte(`{"event_id":"x","actor_id":"a","event_data":{}}`))
	require.NoError(t, err)
	var nulls strings.Builder
	nulls.WriteString(`{"event_id":"x","actor_id":"a","event_data":{}`)
	for _, f := range integrity.OptionalFields {
		fmt.Fprintf(&nulls, `,%q:null`, f)
	}
	nulls.WriteString("}")
	spelled, err := integrity.EventHash([]byte(nulls.String()))
	require.NoError(t, err)
	require.Equal(t, spelled, omitted)
	withIP, err := integrity.EventHash([]byte(`{"event_id":"x","actor_id":"a","event_data":{},"actor_ip":"10.0.0.1"}`))
	require.NoError(t, err)
	require.NotEqual(t, omitted, withIP)
	_, err = integrity.EventHash([]byte(`[1]`))
	require.Error(t, err, "an event is an object")
}

// The reference functions below are written from RFC 9162 §2.1 directly, independent of the
// package's implementation, and check it.

func refMTH(d []integrity.Hash) integrity.Hash {
	switch len(d) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return d[0]
	}
	k := 1
	for k*2 < len(d) {
		k *= 2
	}
	return refNode(refMTH(d[:k]), refMTH(d[k:]))
}

func refNode(l, r integrity.Hash) integrity.Hash {
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func refLeaf(data []byte) integrity.Hash { return sha256.Sum256(append([]byte{0}, data...)) }

func refSplit(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

// refPath is PATH(m, D[n]) of RFC 9162 §2.1.3.1.
func refPath(m int, d []integrity.Hash) []integrity.Hash {
	if len(d) <= 1 {
		return nil
	}
	k := refSplit(len(d))
	if m < k {
		return append(refPath(m, d[:k]), refMTH(d[k:]))
	}
	return append(refPath(m-k, d[k:]), refMTH(d[:k]))
}

// refProof is PROOF(m, D[n]) of RFC 9162 §2.1.4.1.
func refProof(m int, d []integrity.Hash) []integrity.Hash {
	var sub func(m int, d []integrity.Hash, b bool) []integrity.Hash
	sub = func(m int, d []integrity.Hash, b bool) []integrity.Hash {
		if m == len(d) {
			if b {
				return nil
			}
			return []integrity.Hash{refMTH(d)}
		}
		k := refSplit(len(d))
		if m <= k {
			return append(sub(m, d[:k], b), refMTH(d[k:]))
		}
		return append(sub(m-k, d[k:], false), refMTH(d[:k]))
	}
	if m == 0 || m == len(d) {
		return nil
	}
	return sub(m, d, true)
}

// refRootFromPath recomputes a root from a leaf and PATH by the recursion that defines PATH:
// an independent check of VerifyInclusion.
func refRootFromPath(leaf integrity.Hash, m, n int, path []integrity.Hash) integrity.Hash {
	if n == 1 {
		return leaf
	}
	k := refSplit(n)
	last := path[len(path)-1]
	if m < k {
		return refNode(refRootFromPath(leaf, m, k, path[:len(path)-1]), last)
	}
	return refNode(last, refRootFromPath(leaf, m-k, n-k, path[:len(path)-1]))
}

func leaves(n int) []integrity.Hash {
	d := make([]integrity.Hash, n)
	for i := range d {
		d[i] = refLeaf([]byte(fmt.Sprint("event ", i)))
	}
	return d
}

// spanHashes resolves spans from the leaves the way the store does: through Span.Nodes.
func spanHashes(t *testing.T, d []integrity.Hash, spans []integrity.Span) []integrity.Hash {
	if len(spans) == 0 {
		return nil
	}
	out := make([]integrity.Hash, len(spans))
	for i, s := range spans {
		var nodes []integrity.Hash
		for _, n := range s.Nodes() {
			require.LessOrEqual(t, n.End(), uint64(len(d)))
			nodes = append(nodes, refMTH(d[n.Start():n.End()]))
		}
		out[i] = s.HashOf(nodes)
		require.Equal(t, refMTH(d[s.Start:s.End]), out[i], "span %v", s)
	}
	return out
}

func TestMerkleAgainstRFC(t *testing.T) {
	t.Parallel()
	all := leaves(70)
	for n := 1; n <= len(all); n++ {
		d := all[:n]
		root := integrity.RootHash(d)
		require.Equal(t, refMTH(d), root, "n=%d", n)

		var f integrity.Frontier
		for i, l := range d {
			f.Append(l, func(node integrity.Node, h integrity.Hash) {
				require.LessOrEqual(t, node.End(), uint64(i+1))
				require.Equal(t, refMTH(d[node.Start():node.End()]), h, "node %+v", node)
			})
		}
		require.Equal(t, root, f.Root())
		require.Len(t, f.Nodes, len(integrity.FrontierNodes(uint64(n))))

		for m := 0; m < n; m++ {
			spans, err := integrity.InclusionSpans(uint64(m), uint64(n))
			require.NoError(t, err)
			proof := spanHashes(t, d, spans)
			require.Equal(t, refPath(m, d), proof, "PATH(%d, D[%d])", m, n)
			require.Equal(t, root, refRootFromPath(d[m], m, n, proof))
			require.NoError(t, integrity.VerifyInclusion(d[m], uint64(m), uint64(n), proof, root))
			if n > 1 {
				require.Error(t, integrity.VerifyInclusion(d[(m+1)%n], uint64(m), uint64(n), proof, root), "another leaf")
			}
			if len(proof) > 0 {
				bad := append([]integrity.Hash(nil), proof...)
				bad[0][0] ^= 1
				require.Error(t, integrity.VerifyInclusion(d[m], uint64(m), uint64(n), bad, root))
			}
		}
		for m := 0; m <= n; m++ {
			spans, err := integrity.ConsistencySpans(uint64(m), uint64(n))
			require.NoError(t, err)
			proof := spanHashes(t, d, spans)
			require.Equal(t, refProof(m, d), proof, "PROOF(%d, D[%d])", m, n)
			require.NoError(t, integrity.VerifyConsistency(uint64(m), uint64(n), proof, refMTH(d[:m]), root))
			if m > 0 && m < n {
				forged := append(append([]integrity.Hash(nil), d[:m-1]...), refLeaf([]byte("forged")))
				require.Error(t, integrity.VerifyConsistency(uint64(m), uint64(n), proof, refMTH(forged), root))
			}
		}
		for a := 0; a <= n; a += 3 {
			for b := a; b <= n; b += 5 {
				spans, err := integrity.RangeSpans(uint64(a), uint64(b), uint64(n))
				require.NoError(t, err)
				proof := spanHashes(t, d, spans)
				got, err := integrity.RangeRoot(uint64(a), uint64(n), d[a:b], proof)
				require.NoError(t, err)
				require.Equal(t, root, got, "range [%d,%d) of %d", a, b, n)
				if b > a {
					changed := append([]integrity.Hash(nil), d[a:b]...)
					changed[0][0] ^= 1
					got, err = integrity.RangeRoot(uint64(a), uint64(n), changed, proof)
					require.NoError(t, err)
					require.NotEqual(t, root, got)
				}
			}
		}
	}
}

func TestCheckpointSignature(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s := integrity.NewSigner(priv)
	c := s.Sign(integrity.Checkpoint{TreeSize: 42, RootHash: refLeaf([]byte("x")), Timestamp: time.Date(2026, 11, 26, 6, 0, 0, 123, time.UTC)})
	require.NoError(t, c.Verify([]ed25519.PublicKey{pub}))
	require.Equal(t, integrity.KeyID(pub), c.KeyID)

	changed := c
	changed.TreeSize = 41
	require.Error(t, changed.Verify([]ed25519.PublicKey{pub}))
	other, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	require.ErrorContains(t, c.Verify([]ed25519.PublicKey{other}), "not a trusted key")

	parsed, err := integrity.ParsePrivateKey(base64.StdEncoding.EncodeToString(priv.Seed()))
	require.NoError(t, err)
	require.Equal(t, priv, parsed)
	back, err := integrity.ParsePublicKey(integrity.MarshalPublicKey(pub))
	require.NoError(t, err)
	require.Equal(t, pub, back)
	_, err = integrity.ParsePrivateKey("not a key")
	require.Error(t, err)
}
