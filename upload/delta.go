package upload

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/raijin-deploy/raijin/shell"
)

// An upload by difference: when the server has an earlier build of a file
// (the basis, say the version that is live) and this machine still has a
// copy of it, only what changed is sent. The new file is described as
// pieces of the basis and literal bytes, and rebuilt on the server with dd
// and printf, tools every Linux server has. A Go binary rebuilt with another
// version string differs from the last one in a few dozen bytes.

// Op is one piece of the new file: Len bytes of the basis from Off, or
// the literal bytes Lit.
type Op struct {
	Off, Len int64
	Lit      []byte
}

const (
	deltaBlock = 512 // bytes hashed per block of the basis
	// Files smaller than this are always sent whole (and not kept).
	MinDeltaSize = 1 << 20
	// A delta worth sending: at most this many pieces of the basis (each is
	// a process on the server) and literal bytes under a quarter of the file.
	deltaMaxCopies = 24
	// Literals up to this size go in the script as printf escapes; longer
	// ones on stdin.
	deltaInlineMax = 256
)

// rolling hash over a window of deltaBlock bytes (Rabin-Karp, mod 2^32).
const deltaPrime = 16777619

var deltaPow = func() uint32 {
	p := uint32(1)
	for i := 0; i < deltaBlock-1; i++ {
		p *= deltaPrime
	}
	return p
}()

func deltaHash(b []byte) uint32 {
	var h uint32
	for _, c := range b {
		h = h*deltaPrime + uint32(c)
	}
	return h
}

// commonPrefix is how many bytes a and b share from their start.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i+4096 <= n && bytes.Equal(a[i:i+4096], b[i:i+4096]) {
		i += 4096
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// computeDelta describes target as pieces of basis and literals, or returns
// nil when that would not pay (too many pieces, too many new bytes).
func computeDelta(basis, target []byte) []Op {
	if len(basis) < deltaBlock || len(target) < deltaBlock {
		return nil
	}
	index := make(map[uint32][]int, len(basis)/deltaBlock)
	for k := 0; k+deltaBlock <= len(basis); k += deltaBlock {
		h := deltaHash(basis[k : k+deltaBlock])
		if len(index[h]) < 4 {
			index[h] = append(index[h], k)
		}
	}
	var ops []Op
	copies, literal := 0, 0
	maxLiteral := len(target) / 4
	emitLit := func(b []byte) {
		if len(b) > 0 {
			ops = append(ops, Op{Lit: b})
			literal += len(b)
		}
	}
	emitCopy := func(off, n int) {
		if k := len(ops) - 1; k >= 0 && ops[k].Lit == nil && ops[k].Off+ops[k].Len == int64(off) {
			ops[k].Len += int64(n)
			return
		}
		ops = append(ops, Op{Off: int64(off), Len: int64(n)})
		copies++
	}
	lit, i := 0, 0
	var h uint32
	fresh := true
	for i+deltaBlock <= len(target) {
		if fresh {
			h, fresh = deltaHash(target[i:i+deltaBlock]), false
		}
		match := -1
		for _, k := range index[h] {
			if bytes.Equal(basis[k:k+deltaBlock], target[i:i+deltaBlock]) {
				match = k
				break
			}
		}
		if match < 0 {
			if i+deltaBlock < len(target) {
				h = (h-uint32(target[i])*deltaPow)*deltaPrime + uint32(target[i+deltaBlock])
			}
			i++
			if i-lit > maxLiteral {
				return nil
			}
			continue
		}
		// Grow the match both ways, back into the pending literal.
		j, kb := i, match
		for j > lit && kb > 0 && target[j-1] == basis[kb-1] {
			j--
			kb--
		}
		n := (i - j) + deltaBlock + commonPrefix(basis[match+deltaBlock:], target[i+deltaBlock:])
		emitLit(target[lit:j])
		emitCopy(kb, n)
		if copies > deltaMaxCopies || literal > maxLiteral {
			return nil
		}
		i = j + n
		lit, fresh = i, true
	}
	emitLit(target[lit:])
	if copies == 0 || copies > deltaMaxCopies || literal > maxLiteral {
		return nil
	}
	return ops
}

// deltaRebuilds reports whether ops rebuild target from basis exactly (a
// delta is checked before it is sent), without a copy of the file.
func deltaRebuilds(basis, target []byte, ops []Op) bool {
	at := 0
	for _, op := range ops {
		piece := op.Lit
		if piece == nil {
			if op.Off < 0 || op.Off+op.Len > int64(len(basis)) {
				return false
			}
			piece = basis[op.Off : op.Off+op.Len]
		}
		if at+len(piece) > len(target) || !bytes.Equal(piece, target[at:at+len(piece)]) {
			return false
		}
		at += len(piece)
	}
	return at == len(target)
}

// DeltaScript rebuilds the target from basis (a path on the server) and
// ops, through a temporary file that must come out as the target's bytes
// before it is renamed into place. The long literals are read from
// stdin, in order: DeltaStdin.
func DeltaScript(basis string, f Target, ops []Op) string {
	var s strings.Builder
	fmt.Fprintf(&s, "set -e; t=%s.raijin-$$; trap 'rm -f \"$t\"' EXIT\n{\n", shell.Quote(f.Remote))
	for _, op := range ops {
		switch {
		case op.Lit == nil:
			fmt.Fprintf(&s, "dd if=%s bs=1M iflag=skip_bytes,count_bytes skip=%d count=%d status=none\n", shell.Quote(basis), op.Off, op.Len)
		case len(op.Lit) <= deltaInlineMax:
			s.WriteString("printf '")
			for _, c := range op.Lit {
				fmt.Fprintf(&s, "\\%03o", c)
			}
			s.WriteString("'\n")
		default:
			fmt.Fprintf(&s, "head -c %d\n", len(op.Lit))
		}
	}
	s.WriteString("} > \"$t\"\n")
	s.WriteString(placeScript(f))
	return s.String()
}

// DeltaStdin is what DeltaScript reads on stdin: its long literals.
func DeltaStdin(ops []Op) []byte {
	var b []byte
	for _, op := range ops {
		if len(op.Lit) > deltaInlineMax {
			b = append(b, op.Lit...)
		}
	}
	return b
}

// DeltaLiteral is how many bytes of a delta are new.
func DeltaLiteral(ops []Op) int {
	n := 0
	for _, op := range ops {
		n += len(op.Lit)
	}
	return n
}
