// relay is a TCP relay that adds latency, for raijin's benchmarks: every
// chunk of bytes is held for -delay in each direction, so a round trip
// through it costs twice -delay more (-delay 25ms: 50 ms RTT), while the
// bandwidth stays that of the link below unless -rate limits it (in bits
// per second, each direction: -rate 50M is a 50 Mbit/s link; bytes queue
// behind each other as on a real link, up to a second's worth, then the
// sender waits). It also counts connections and bytes, so a benchmark can
// report what any client (raijin, ssh, scp) sent.
//
//	relay -delay 25ms -rate 50M -stats FILE LISTEN=TARGET [LISTEN=TARGET...]
//
// On every connection's end it appends "conn LISTEN up=N down=M" to FILE,
// and for each direction with a -rate, when its first and last bytes came
// (seconds after the connection was accepted) and how long the link stood
// idle between them, waiting for the sender: "up_first=0.41 up_last=4.83
// up_idle=0.62". Idle time is what a sender loses to its own pauses.
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

type chunk struct {
	data []byte
	due  time.Time
}

// flow is what pipe saw of one direction: its bytes, when the first and
// last came, and how long the link stood idle between them.
type flow struct {
	n           int64
	first, last time.Time
	idle        time.Duration
}

// pipe copies src to dst, each chunk delayed by d from the moment it was
// read (and, at a limited rate in bytes per second, from the moment the
// chunks before it have gone through the link), in order.
func pipe(dst, src net.Conn, d time.Duration, rate float64) flow {
	ch := make(chan chunk, 4096)
	var f flow
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
	buf := make([]byte, 16<<10)
	var linkFree time.Time // when the link has sent what is queued
	for {
		k, err := src.Read(buf)
		if k > 0 {
			f.n += int64(k)
			now := time.Now()
			if f.first.IsZero() {
				f.first = now
			} else if linkFree.Before(now) {
				f.idle += now.Sub(linkFree)
			}
			f.last = now
			due := now.Add(d)
			if rate > 0 {
				if q := linkFree.Sub(now); q > time.Second {
					time.Sleep(q - time.Second) // the queue is full: the sender waits
					now = time.Now()
				}
				start := linkFree
				if start.Before(now) {
					start = now
				}
				linkFree = start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
				due = linkFree.Add(d)
			}
			ch <- chunk{data: append([]byte(nil), buf[:k]...), due: due}
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
	return f
}

func main() {
	delay := flag.Duration("delay", 0, "added one-way delay (half the added RTT)")
	stats := flag.String("stats", "", "append a line per finished connection to this file")
	rateFlag := flag.String("rate", "", "bandwidth in bits per second, each direction (50M, 10M, 1G; empty: unlimited)")
	flag.Parse()
	rate, err := parseRate(*rateFlag)
	if err != nil {
		log.Fatal(err)
	}
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: relay [-delay 25ms] [-rate 50M] [-stats FILE] LISTEN=TARGET ...")
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
					accepted := time.Now()
					var up, down flow
					var w sync.WaitGroup
					w.Add(2)
					go func() { defer w.Done(); up = pipe(t, c, *delay, rate) }()
					go func() { defer w.Done(); down = pipe(c, t, *delay, rate) }()
					w.Wait()
					line := fmt.Sprintf("conn %s up=%d down=%d", listen, up.n, down.n)
					if rate > 0 {
						for _, d := range []struct {
							name string
							f    flow
						}{{"up", up}, {"down", down}} {
							if d.f.n > 0 {
								line += fmt.Sprintf(" %[1]s_first=%.2[2]f %[1]s_last=%.2[3]f %[1]s_idle=%.2[4]f", d.name,
									d.f.first.Sub(accepted).Seconds(), d.f.last.Sub(accepted).Seconds(), d.f.idle.Seconds())
							}
						}
					}
					record(line)
				}(c)
			}
		}()
	}
	fmt.Println("relay ready")
	wg.Wait()
}

// parseRate reads "50M" (bits per second, with k, M or G) as bytes per
// second; "" is unlimited (0).
func parseRate(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	mult := 1.0
	switch s[len(s)-1] {
	case 'k', 'K':
		mult, s = 1e3, s[:len(s)-1]
	case 'm', 'M':
		mult, s = 1e6, s[:len(s)-1]
	case 'g', 'G':
		mult, s = 1e9, s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("-rate %q: want bits per second, such as 50M or 10M", s)
	}
	return v * mult / 8, nil
}
