// goapp is the sample web app raijin's tests and demo deploy: it answers / with
// its version and greeting, /up for health checks, and /env/NAME with an
// environment variable, and /probe with what its own process may do on the
// server (see probe.go). It listens on $PORT, or on the socket systemd passes
// (socket activation); START_DELAY=1s delays its start.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

var version = "dev"

func listener() (net.Listener, error) {
	if os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) && os.Getenv("LISTEN_FDS") == "1" {
		return net.FileListener(os.NewFile(3, "systemd-socket"))
	}
	addr := os.Getenv("LISTEN_ADDR")
	if addr == "" {
		port := os.Getenv("PORT")
		if port == "" {
			port = "8000"
		}
		addr = "127.0.0.1:" + port
	}
	return net.Listen("tcp", addr)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		// A release command: records that it ran, for the tests, in the
		// app's state directory (the only place it may write).
		f, err := os.OpenFile(stateFile("migrations.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintf(f, "migrated to %s\n", version)
		f.Close()
		if os.Getenv("FAIL_MIGRATE") == "1" {
			fmt.Fprintln(os.Stderr, "migration failed on purpose (FAIL_MIGRATE=1)")
			os.Exit(3)
		}
		return
	}
	if os.Getenv("FAIL_START") == "1" {
		fmt.Fprintln(os.Stderr, "refusing to start (FAIL_START=1)")
		os.Exit(1)
	}
	if d, err := time.ParseDuration(os.Getenv("START_DELAY")); err == nil {
		// A slow start (loading, warming caches): nothing listens meanwhile.
		time.Sleep(d)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // a form post, read as an app would
		fmt.Fprintf(w, "goapp %s: %s\n", version, os.Getenv("GREETING"))
	})
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("FAIL_HEALTH") == "1" {
			http.Error(w, "unhealthy on purpose", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/sleep/", func(w http.ResponseWriter, r *http.Request) {
		// A slow request (/sleep/3s): answered after that long, at most 30s.
		if d, err := time.ParseDuration(r.URL.Path[len("/sleep/"):]); err == nil && d <= 30*time.Second {
			time.Sleep(d)
		}
		fmt.Fprintf(w, "goapp %s: slept\n", version)
	})
	mux.HandleFunc("/probe", probe)
	mux.HandleFunc("/env/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(r.URL.Path[len("/env/"):]))
	})
	ln, err := listener()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// Graceful shutdown on SIGTERM (systemctl stop/restart): stop accepting,
	// finish the requests in flight, then exit. Serve returns at once when
	// Shutdown starts, so main waits for Shutdown to be done.
	drained := make(chan struct{})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		// Up to 18 s: within systemd's stop timeout (20 s), so the app
		// always exits on its own.
		ctx, cancel := context.WithTimeout(context.Background(), 18*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		close(drained)
	}()
	fmt.Printf("goapp %s listening on %s\n", version, ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	<-drained
}
