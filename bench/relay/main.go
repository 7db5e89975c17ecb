// relay is a TCP relay that adds latency, for raijin's benchmarks: every
// chunk of bytes is held for -delay in each direction, so a round trip
// through it costs twice -delay more (-delay 25ms: 50 ms RTT), while the
// bandwidth stays that of the link below. It also counts connections and
// bytes, so a benchmark can report what any client (raijin, ssh, scp) sent.
//
//	relay -delay 25ms -stats FILE LISTEN=TARGET [LISTEN=TARGET...]
//
// On every connection's end it appends "conn LISTEN up=N down=M" to FILE.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, each chunk delayed by d from the moment it was
// read, in order. It returns the bytes copied.
func pipe(dst, src net.Conn, d time.Duration) int64 {
	ch := make(chan chunk, 4096)
	var n int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range ch {
			if w := time.Until(c.due); w > 0 {
				time.Sleep(w)
			}
			if _, err := dst.Write(c.data); err != nil {
				for range ch {
				}
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n += int64(k)
			ch <- chunk{data: append([]byte(nil), buf[:k]...), due: time.Now().Add(d)}
		}
		if err != nil {
			break
		}
	}
	close(ch)
	<-done
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	return n
}

func main() {
	delay := flag.Duration("delay", 0, "added one-way delay (half the added RTT)")
	stats := flag.String("stats", "", "append a line per finished connection to this file")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: relay [-delay 25ms] [-stats FILE] LISTEN=TARGET ...")
		os.Exit(2)
	}
	var mu sync.Mutex
	record := func(line string) {
		if *stats == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(*stats, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			log.Print(err)
			return
		}
		fmt.Fprintln(f, line)
		f.Close()
	}
	var wg sync.WaitGroup
	for _, pair := range flag.Args() {
		listen, target, ok := strings.Cut(pair, "=")
		if !ok {
			log.Fatalf("%q: want LISTEN=TARGET", pair)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			log.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					log.Fatal(err)
				}
				go func(c net.Conn) {
					defer c.Close()
					t, err := net.Dial("tcp", target)
					if err != nil {
						log.Print(err)
						return
					}
					defer t.Close()
					c.(*net.TCPConn).SetNoDelay(true)
					t.(*net.TCPConn).SetNoDelay(true)
					var up, down int64
					var w sync.WaitGroup
					w.Add(2)
					go func() { defer w.Done(); up = pipe(t, c, *delay) }()
					go func() { defer w.Done(); down = pipe(c, t, *delay) }()
					w.Wait()
					record(fmt.Sprintf("conn %s up=%d down=%d", listen, up, down))
				}(c)
			}
		}()
	}
	fmt.Println("relay ready")
	wg.Wait()
}
