package upload

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression on the wire. SSH as x/crypto/ssh speaks it compresses
// nothing, so a file goes compressed by raijin itself when the server has
// a tool to undo it: zstd where installed (`server bootstrap` installs it),
// gzip otherwise (every Debian and Ubuntu server has it). A file that is
// compressed already (a wheel, a zip, a tarball) or does not shrink goes
// as it is: compressing it again costs this machine's time for nothing.

// Codec names how a file travels: "" as it is, "zstd" or "gzip".
type Codec string

const (
	Plain Codec = ""
	Zstd  Codec = "zstd"
	Gzip  Codec = "gzip"
)

const (
	// Files smaller than this go as they are: a few kB saved are not worth
	// a process on the server.
	MinCompressSize = 64 << 10
	// A compressed file goes when it is at most this share of the file
	// (in percent); else the file goes as it is.
	compressWorth = 90
	// Files over this size go as they are: they are compressed in memory.
	MaxCompressSize = 1 << 30
)

// HugePages is the environment setting that lets glibc's malloc (2.35 and
// later) back its large blocks with transparent huge pages, where the kernel
// offers them (enabled or madvise). zstd reads a patch's basis, tens of MB,
// into memory it has just allocated, and on a virtual machine faulting that
// in 4 kB at a time dominates: measured on Debian 12's zstd 1.5.4 with an
// 82 MB basis, a patch's first byte came after 0.9 to 1.35 s without it and
// 0.5 to 0.8 s with it, and the server's zstd took 0.7 to 0.9 s to load the
// basis against 0.07 to 0.4 s. Other C libraries, older glibc and kernels
// without huge pages ignore it. Tunables set already (the user's on this
// machine, the server's there) are kept after it, so theirs win.
const HugePages = "GLIBC_TUNABLES=" + hugePagesTunable

const hugePagesTunable = "glibc.malloc.hugetlb=1"

// hugePagesPrefix puts HugePages before a command in a server's shell,
// keeping the server's own GLIBC_TUNABLES after it: a fixed text, with no
// value from anywhere else.
const hugePagesPrefix = `GLIBC_TUNABLES="` + hugePagesTunable + `${GLIBC_TUNABLES:+:$GLIBC_TUNABLES}"`

// DecompressCommand is the server's command that reads a file sent with c
// on stdin and writes it on stdout.
func (c Codec) DecompressCommand() string {
	switch c {
	case Zstd:
		return hugePagesPrefix + " zstd -dcq"
	case Gzip:
		return "gzip -dc"
	}
	return "cat"
}

// compressedMagic are the first bytes of formats that are compressed
// already: zip (wheels, jars), gzip, zstd, xz, bzip2, 7z, PNG, JPEG.
var compressedMagic = [][]byte{
	{'P', 'K', 3, 4}, {0x1f, 0x8b}, {0x28, 0xb5, 0x2f, 0xfd}, {0xfd, '7', 'z', 'X', 'Z', 0},
	{'B', 'Z', 'h'}, {'7', 'z', 0xbc, 0xaf}, {0x89, 'P', 'N', 'G'}, {0xff, 0xd8, 0xff},
}

// CompressedAlready reports whether the file starting with head is in a
// compressed format.
func CompressedAlready(head []byte) bool {
	for _, m := range compressedMagic {
		if bytes.HasPrefix(head, m) {
			return true
		}
	}
	return false
}

// Compressed is a file ready to go compressed, or told why it goes as it is.
type Compressed struct {
	Codec Codec
	Data  []byte // the bytes on the wire; nil when Codec is Plain
}

// compressedFiles keeps each file compressed once per run (a deploy to
// many hosts sends the same bytes to each).
var compressedFiles struct {
	sync.Mutex
	m map[[2]string]*compressOnce
}

type compressOnce struct {
	once sync.Once
	c    Compressed
	err  error
}

// Compress returns the local file (whose SHA-256 is sum) compressed with
// codec, or Codec Plain when it should go as it is: too small, compressed
// already, or not shrinking enough, or RAIJIN_COMPRESS=0 (for a link so
// fast that compressing takes longer than the bytes it saves: about
// 1 Gbit/s for a Go binary on 2 cores). Worked out once per run.
func Compress(local, sum string, size int64, codec Codec) (Compressed, error) {
	if codec == Plain || size < MinCompressSize || size > MaxCompressSize || os.Getenv("RAIJIN_COMPRESS") == "0" {
		return Compressed{}, nil
	}
	compressedFiles.Lock()
	if compressedFiles.m == nil {
		compressedFiles.m = map[[2]string]*compressOnce{}
	}
	key := [2]string{sum, string(codec)}
	o := compressedFiles.m[key]
	if o == nil {
		o = &compressOnce{}
		compressedFiles.m[key] = o
	}
	compressedFiles.Unlock()
	o.once.Do(func() { o.c, o.err = compressFile(local, codec) })
	return o.c, o.err
}

func compressFile(local string, codec Codec) (Compressed, error) {
	if head, err := readHead(local, 8); err != nil || CompressedAlready(head) {
		return Compressed{}, err
	}
	data, err := os.ReadFile(local)
	if err != nil {
		return Compressed{}, err
	}
	// Not hashed again here: the server checks what it rebuilds against
	// sum before it renames it into place, as for a file sent as it is.
	var out []byte
	switch codec {
	case Zstd:
		out, err = zstdCompress(data)
	case Gzip:
		out, err = gzipCompress(data)
	default:
		return Compressed{}, fmt.Errorf("unknown codec %q", codec)
	}
	if err != nil {
		return Compressed{}, err
	}
	if int64(len(out))*100 > int64(len(data))*compressWorth {
		return Compressed{}, nil
	}
	return Compressed{Codec: codec, Data: out}, nil
}

func readHead(local string, n int) ([]byte, error) {
	f, err := os.Open(local)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return b[:k], err
}

// zstdCompress compresses at the library's fastest level, on every core.
// On the sample Go binary (8.9 MB, 2 cores) that is 5.09 MB in 0.05 s; its
// default level makes 4.98 MB in 0.17 to 0.34 s: the 0.1 MB saved take
// longer than sending them on any link faster than 5 Mbit/s.
func zstdCompress(data []byte) ([]byte, error) {
	return compressWith(data, func(w io.Writer) (io.WriteCloser, error) {
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithEncoderCRC(true))
	})
}

// gzipCompress is for a server without zstd. The library's level 6 is both
// smaller and faster than its level 1 on the sample binary (5.02 MB in
// 0.12 s against 5.32 MB in 0.17 s; the standard library's level 6: 4.96 MB
// in 0.30 s).
func gzipCompress(data []byte) ([]byte, error) {
	return compressWith(data, func(w io.Writer) (io.WriteCloser, error) {
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	})
}

func compressWith(data []byte, newWriter func(io.Writer) (io.WriteCloser, error)) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(data) / 2)
	w, err := newWriter(&b)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Decompress undoes c, for checks on this machine.
func Decompress(c Codec, data []byte) ([]byte, error) {
	switch c {
	case Zstd:
		d, err := zstd.NewReader(nil, zstd.WithDecoderMaxWindow(1<<31))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return d.DecodeAll(data, nil)
	case Gzip:
		r, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}
	return data, nil
}
