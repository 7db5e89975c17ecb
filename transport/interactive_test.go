package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"github.com/raijin-deploy/raijin/internal/testkit"
	"golang.org/x/crypto/ssh"
)

// sessionServer is an in-process SSH server whose commands test how Stream
// and Interactive talk to a session: exit codes, output, terminals, signals.
func sessionServer(t *testing.T) *Client {
	t.Helper()
	home := testkit.Home(t)
	key := filepath.Join(home, "keys", "deploy")
	testkit.WriteKey(t, key, "")
	ts := &testkit.Server{HostKeys: []ssh.Signer{testkit.NewSigner(t)}}
	srv := &gliderssh.Server{
		Handler:          handleTestSession,
		PublicKeyHandler: func(gliderssh.Context, gliderssh.PublicKey) bool { return true },
	}
	srv.AddHostKey(ts.HostKeys[0])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.Addr, ts.Port = ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	testkit.Trust(t, home, ts)
	return dial(t, Target{Name: "test", Address: "127.0.0.1", Port: ts.Port, KeyFile: key, Timeout: 5 * time.Second})
}

func handleTestSession(s gliderssh.Session) {
	switch s.RawCommand() {
	case "exit7":
		fmt.Fprint(s, "to stdout")
		fmt.Fprint(s.Stderr(), "to stderr")
		s.Exit(7)
	case "cat":
		io.Copy(s, s)
		s.Exit(0)
	case "wait-signal":
		sigs := make(chan gliderssh.Signal, 1)
		s.Signals(sigs)
		fmt.Fprintln(s, "waiting")
		select {
		case sig := <-sigs:
			fmt.Fprintf(s, "got SIG%s\n", sig)
			s.Exit(130)
		case <-time.After(10 * time.Second):
			s.Exit(0)
		}
	case "terminal":
		req, _, ok := s.Pty()
		if !ok {
			fmt.Fprintln(s, "no terminal")
			s.Exit(99)
			return
		}
		fmt.Fprintf(s, "term=%s size=%dx%d\n", req.Term, req.Window.Width, req.Window.Height)
		buf := make([]byte, 1)
		for {
			if _, err := s.Read(buf); err != nil {
				s.Exit(1)
				return
			}
			switch buf[0] {
			case 3: // what a terminal turns Ctrl-C into
				fmt.Fprintln(s, "interrupted")
				s.Exit(130)
				return
			case 'q':
				s.Exit(4)
				return
			default:
				fmt.Fprintf(s, "key %q\n", buf[0])
			}
		}
	default:
		s.Exit(127)
	}
}

func TestStreamExitCodeAndOutput(t *testing.T) {
	cl := sessionServer(t)
	var out, errb bytes.Buffer
	code, err := cl.Stream(context.Background(), "exit7", nil, &out, &errb)
	if err != nil || code != 7 || out.String() != "to stdout" || errb.String() != "to stderr" {
		t.Errorf("Stream = %d, %v, %q, %q", code, err, out.String(), errb.String())
	}
	out.Reset()
	code, err = cl.Stream(context.Background(), "cat", strings.NewReader("fed on stdin"), &out, &errb)
	if err != nil || code != 0 || out.String() != "fed on stdin" {
		t.Errorf("Stream with stdin = %d, %v, %q", code, err, out.String())
	}
}

// Cancelling a streamed command (Ctrl-C in raijin) sends it SIGINT.
func TestStreamCancelSendsInterrupt(t *testing.T) {
	cl := sessionServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	go func() {
		buf := make([]byte, 64)
		pr.Read(buf) // "waiting": the command runs
		cancel()
		io.Copy(io.Discard, pr)
	}()
	var out bytes.Buffer
	code, _ := cl.Stream(ctx, "wait-signal", nil, io.MultiWriter(pw, &out), io.Discard)
	pw.Close()
	if code != 130 || !strings.Contains(out.String(), "got SIGINT") {
		t.Errorf("a cancelled stream: exit %d, output %q; want SIGINT and exit 130", code, out.String())
	}
}

// Interactive asks for a terminal of the local size and type and passes keys
// through; without a local terminal, a cancelled context (SIGINT) becomes the
// terminal's interrupt character.
func TestInteractiveTerminal(t *testing.T) {
	cl := sessionServer(t)
	t.Setenv("TERM", "xterm-test")
	in, keys, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out syncBuffer
	keys.Write([]byte("ab"))
	go func() {
		time.Sleep(200 * time.Millisecond)
		keys.Write([]byte("q"))
	}()
	code, err := cl.Interactive(context.Background(), "terminal", Terminal{In: in, Out: &out})
	if err != nil || code != 4 {
		t.Errorf("Interactive = %d, %v; want the remote exit 4", code, err)
	}
	for _, want := range []string{"term=xterm-test size=80x24", `key 'a'`, `key 'b'`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the session printed %q, lacking %q", out.String(), want)
		}
	}
	keys.Close()

	in2, keys2, _ := os.Pipe()
	defer in2.Close()
	defer keys2.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out2 syncBuffer
	go func() {
		for !strings.Contains(out2.String(), "term=") {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	code, err = cl.Interactive(ctx, "terminal", Terminal{In: in2, Out: &out2})
	if err != nil || code != 130 || !strings.Contains(out2.String(), "interrupted") {
		t.Errorf("a cancelled interactive session: %d, %v, %q; want Ctrl-C sent and exit 130", code, err, out2.String())
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
