package integrity

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"
)

// Node names a perfect subtree of the log: the 2^Level leaves from Index·2^Level on. Level 0
// is a leaf. The log stores only some levels; the rest is computed from what is stored.
type Node struct {
	Level uint8
	Index uint64
}

// Start is the first leaf the node covers.
func (n Node) Start() uint64 { return n.Index << n.Level }

// End is one past the last leaf the node covers.
func (n Node) End() uint64 { return (n.Index + 1) << n.Level }

// Span is a range [Start, End) of leaves of the log whose hash is MTH(D[Start:End]) in
// RFC 9162's terms. Proofs are lists of spans; every span they contain is aligned, so its hash
// follows from the perfect subtrees Nodes returns.
type Span struct{ Start, End uint64 }

// split is RFC 9162's k: the largest power of two smaller than n (n > 1).
func split(n uint64) uint64 { return 1 << (bits.Len64(n-1) - 1) }

// Nodes lists the perfect subtrees whose hashes make up the span's hash, left to right.
func (s Span) Nodes() []Node {
	var out []Node
	for lo := s.Start; lo < s.End; {
		// The largest aligned perfect subtree starting at lo that fits.
		level := uint8(bits.TrailingZeros64(lo))
		if lo == 0 {
			level = 63
		}
		for (uint64(1) << level) > s.End-lo {
			level--
		}
		out = append(out, Node{level, lo >> level})
		lo += 1 << level
	}
	return out
}

// HashOf returns the hash of span s given the hashes of its Nodes, in order.
func (s Span) HashOf(nodes []Hash) Hash {
	// The RFC splits the span at k = split(size) from the left; the nodes list splits the
	// same way, so the hash folds from the right.
	h := nodes[len(nodes)-1]
	for i := len(nodes) - 2; i >= 0; i-- {
		h = NodeHash(nodes[i], h)
	}
	return h
}

// InclusionSpans lists the spans of the inclusion proof of leaf m in the tree of size n, in
// the order of RFC 9162 §2.1.3.1 (the sibling nearest the leaf first).
func InclusionSpans(m, n uint64) ([]Span, error) {
	if m >= n {
		return nil, fmt.Errorf("leaf %d is not in a tree of %d leaves", m, n)
	}
	var rec func(m, lo, hi uint64) []Span
	rec = func(m, lo, hi uint64) []Span {
		if hi-lo == 1 {
			return nil
		}
		k := split(hi - lo)
		if m < lo+k {
			return append(rec(m, lo, lo+k), Span{lo + k, hi})
		}
		return append(rec(m, lo+k, hi), Span{lo, lo + k})
	}
	return rec(m, 0, n), nil
}

// ConsistencySpans lists the spans of the consistency proof between the trees of sizes m and
// n, in the order of RFC 9162 §2.1.4.1. It is empty when m is 0 or m equals n.
func ConsistencySpans(m, n uint64) ([]Span, error) {
	if m > n {
		return nil, fmt.Errorf("a tree of %d leaves cannot be a prefix of one of %d", m, n)
	}
	if m == 0 || m == n {
		return nil, nil
	}
	var rec func(m, lo, hi uint64, complete bool) []Span
	rec = func(m, lo, hi uint64, complete bool) []Span {
		if m == hi-lo {
			if complete {
				return nil
			}
			return []Span{{lo, hi}}
		}
		k := split(hi - lo)
		if m <= k {
			return append(rec(m, lo, lo+k, complete), Span{lo + k, hi})
		}
		return append(rec(m-k, lo+k, hi, false), Span{lo, lo + k})
	}
	return rec(m, 0, n, true), nil
}

// RangeSpans lists what proves the leaves [a, b) to be the leaves a..b-1 of the tree of size
// n: the hashes of every maximal subtree of the tree outside [a, b), left to right. With them
// and the leaves, RangeRoot recomputes the tree's root. An archived month carries such a proof.
func RangeSpans(a, b, n uint64) ([]Span, error) {
	if a > b || b > n {
		return nil, fmt.Errorf("leaves [%d, %d) are not in a tree of %d leaves", a, b, n)
	}
	var out []Span
	var rec func(lo, hi uint64)
	rec = func(lo, hi uint64) {
		switch {
		case hi <= a || lo >= b:
			out = append(out, Span{lo, hi})
		case a <= lo && hi <= b:
		default:
			k := split(hi - lo)
			rec(lo, lo+k)
			rec(lo+k, hi)
		}
	}
	if n > 0 {
		rec(0, n)
	}
	return out, nil
}

// RootHash is MTH of a list of leaf hashes (RFC 9162 §2.1.1).
func RootHash(leaves []Hash) Hash {
	if len(leaves) == 0 {
		return EmptyRoot
	}
	var f Frontier
	for _, l := range leaves {
		f.Append(l, nil)
	}
	return f.Root()
}

// RangeRoot recomputes the root of the tree of size n from its leaves [a, b) (leaf hashes) and
// the hashes of RangeSpans(a, b, n), in order.
func RangeRoot(a, n uint64, leaves []Hash, proof []Hash) (Hash, error) {
	b := a + uint64(len(leaves))
	if b > n {
		return Hash{}, fmt.Errorf("leaves [%d, %d) are not in a tree of %d leaves", a, b, n)
	}
	if n == 0 {
		return EmptyRoot, nil
	}
	var rec func(lo, hi uint64) (Hash, error)
	rec = func(lo, hi uint64) (Hash, error) {
		switch {
		case hi <= a || lo >= b:
			if len(proof) == 0 {
				return Hash{}, errors.New("range proof is too short")
			}
			h := proof[0]
			proof = proof[1:]
			return h, nil
		case a <= lo && hi <= b:
			return RootHash(leaves[lo-a : hi-a]), nil
		}
		k := split(hi - lo)
		l, err := rec(lo, lo+k)
		if err != nil {
			return Hash{}, err
		}
		r, err := rec(lo+k, hi)
		if err != nil {
			return Hash{}, err
		}
		return NodeHash(l, r), nil
	}
	root, err := rec(0, n)
	if err == nil && len(proof) > 0 {
		err = errors.New("range proof is too long")
	}
	return root, err
}

// VerifyInclusion checks an inclusion proof of the leaf with hash leaf at index m in the tree
// of size n with root, by the algorithm of RFC 9162 §2.1.3.2.
func VerifyInclusion(leaf Hash, m, n uint64, proof []Hash, root Hash) error {
	if m >= n {
		return fmt.Errorf("leaf %d is not in a tree of %d leaves", m, n)
	}
	fn, sn := m, n-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return errors.New("inclusion proof is too long")
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return errors.New("inclusion proof is too short")
	}
	if r != root {
		return errors.New("inclusion proof does not lead to the root")
	}
	return nil
}

// VerifyConsistency checks a consistency proof between the tree of size m with root1 and the
// tree of size n with root2, by the algorithm of RFC 9162 §2.1.4.2.
func VerifyConsistency(m, n uint64, proof []Hash, root1, root2 Hash) error {
	switch {
	case m > n:
		return fmt.Errorf("a tree of %d leaves cannot be a prefix of one of %d", m, n)
	case m == n:
		if len(proof) != 0 {
			return errors.New("consistency proof between equal sizes must be empty")
		}
		if root1 != root2 {
			return errors.New("equal tree sizes with different roots")
		}
		return nil
	case m == 0:
		if len(proof) != 0 {
			return errors.New("consistency proof from the empty tree must be empty")
		}
		return nil
	}
	if len(proof) == 0 {
		return errors.New("consistency proof is empty")
	}
	if m&(m-1) == 0 { // m is a power of two: the old root is the first node
		proof = append([]Hash{root1}, proof...)
	}
	fn, sn := m-1, n-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := proof[0], proof[0]
	for _, c := range proof[1:] {
		if sn == 0 {
			return errors.New("consistency proof is too long")
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return errors.New("consistency proof is too short")
	}
	if fr != root1 {
		return errors.New("consistency proof does not lead to the first root")
	}
	if sr != root2 {
		return errors.New("consistency proof does not lead to the second root")
	}
	return nil
}

// Frontier is the right edge of a log: the roots of the perfect subtrees its size decomposes
// into, largest first. Appending to it yields every completed perfect subtree, which is what a
// log stores to answer proofs without reading all its leaves.
type Frontier struct {
	Size  uint64
	Nodes []Hash // one per set bit of Size, highest bit first
}

// FrontierNodes names the nodes of the frontier of a log of size n, largest first.
func FrontierNodes(n uint64) []Node {
	return Span{0, n}.Nodes()
}

// Append adds a leaf hash; emit, when not nil, is called with every perfect subtree of level
// one or more that the leaf completes.
func (f *Frontier) Append(leaf Hash, emit func(Node, Hash)) {
	f.Nodes = append(f.Nodes, leaf)
	idx := f.Size
	f.Size++
	for level := uint8(0); idx&1 == 1; level++ {
		last := len(f.Nodes) - 1
		h := NodeHash(f.Nodes[last-1], f.Nodes[last])
		f.Nodes = append(f.Nodes[:last-1], h)
		idx >>= 1
		if emit != nil {
			emit(Node{level + 1, idx}, h)
		}
	}
}

// Root is the root hash of the log of size f.Size.
func (f *Frontier) Root() Hash {
	if len(f.Nodes) == 0 {
		return EmptyRoot
	}
	return Span{0, f.Size}.HashOf(f.Nodes)
}

// LogLeaf is one leaf of the log with the event it seals, as an archive keeps it.
type LogLeaf struct {
	Index          uint64
	EventID        [16]byte
	EventTimestamp time.Time
	RetentionDays  int
	EventHash      Hash
}

// LeafRecordSize is the size of a leaf's record: event_id (16 bytes), event_timestamp (int64
// microseconds since the Unix epoch), retention_days (int32) and event_hash (32 bytes), big
// endian. Runs of records are how the log stores its leaves and how archives carry them; a
// record's leaf index is implicit in its position.
const LeafRecordSize = 16 + 8 + 4 + 32

// AppendRecord appends the leaf's record.
func (l LogLeaf) AppendRecord(b []byte) []byte {
	b = append(b, l.EventID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(l.EventTimestamp.UnixMicro()))
	b = binary.BigEndian.AppendUint32(b, uint32(int32(l.RetentionDays)))
	return append(b, l.EventHash[:]...)
}

// ParseRecord reads the record of leaf index from rec, which holds at least LeafRecordSize
// bytes.
func ParseRecord(index uint64, rec []byte) LogLeaf {
	l := LogLeaf{Index: index,
		EventTimestamp: time.UnixMicro(int64(binary.BigEndian.Uint64(rec[16:24]))).UTC(),
		RetentionDays:  int(int32(binary.BigEndian.Uint32(rec[24:28])))}
	copy(l.EventID[:], rec[:16])
	copy(l.EventHash[:], rec[28:LeafRecordSize])
	return l
}

// RangeProof proves the leaves [First, End) part of the log of Checkpoint: with them, the
// hashes Proof (of RangeSpans(First, End, Checkpoint.TreeSize)) recompute its root.
type RangeProof struct {
	Checkpoint Checkpoint `json:"checkpoint"`
	First      uint64     `json:"first_leaf"`
	End        uint64     `json:"end_leaf"`
	Proof      []Hash     `json:"range_proof"`
}

// Verify checks the leaves (the hashes of [First, End), in order) against the checkpoint's
// root; the checkpoint's signature is the caller's to check.
func (p RangeProof) Verify(leafHashes []Hash) error {
	if uint64(len(leafHashes)) != p.End-p.First {
		return fmt.Errorf("%d leaves for the range [%d, %d)", len(leafHashes), p.First, p.End)
	}
	root, err := RangeRoot(p.First, p.Checkpoint.TreeSize, leafHashes, p.Proof)
	if err != nil {
		return err
	}
	if root != p.Checkpoint.RootHash {
		return fmt.Errorf("leaves [%d, %d) do not lead to the root of the checkpoint of size %d", p.First, p.End, p.Checkpoint.TreeSize)
	}
	return nil
}
