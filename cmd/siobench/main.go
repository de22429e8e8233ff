// Command siobench measures a Socket.IO server running seed 001's chat:
// Clients Socket.IO clients in one chat (the sender's connection and the
// receiver's many connections, since the seed delivers a message to every
// socket of the receiver and to the sender), Rate messages per second
// posted with create_message, each one stamped with its posting time, and
// every response_message delivery timed. It reports deliveries per second,
// the latency from post to delivery (p50, p99), and with -pid the
// server's CPU per delivery (utime+stime from /proc) and RSS per
// connection. The same tool measures floorhub's agent and the reference
// server in node/ (npm socket.io); scripts/siobench.sh runs both
// alternately and prints the ratios (BENCHMARKS.md).
//
// The clients open their sessions with transport=websocket, the transport
// a stock client ends up on after its long-polling handshake and upgrade.
//
//	siobench -url http://127.0.0.1:3001 -pid $(pgrep -f server.mjs) -n 1000 -rate 10 -duration 20s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"
)

func main() {
	var cfg Config
	name := flag.String("name", "server", "a `label` for the RESULT line")
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:3001", "the server's base `URL` (the tool adds /socket.io/)")
	flag.IntVar(&cfg.Clients, "n", 1000, "Socket.IO clients in the chat: the sender and n-1 connections of the receiver")
	flag.Float64Var(&cfg.Rate, "rate", 10, "messages posted per second")
	flag.DurationVar(&cfg.Warmup, "warmup", 5*time.Second, "posting before the measured phase")
	flag.DurationVar(&cfg.Duration, "duration", 20*time.Second, "the measured phase")
	flag.Int64Var(&cfg.Sender, "sender", 1, "the sender's user `number` (userId)")
	flag.Int64Var(&cfg.Receiver, "receiver", 2, "the receiver's user `number` (userId)")
	flag.StringVar(&cfg.SenderToken, "sender-token", "", "the sender's `token` (floorhub: agent token -uid 1)")
	flag.StringVar(&cfg.ReceiverToken, "receiver-token", "", "the receiver's `token` (floorhub: agent token -uid 2)")
	flag.IntVar(&cfg.PID, "pid", 0, "the server's process `id`, for its CPU and RSS")
	flag.IntVar(&cfg.Size, "size", 64, "message text `bytes`")
	flag.IntVar(&cfg.Dials, "dials", 20, "clients connecting at once")
	flag.Parse()
	cfg.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	secs := r.Elapsed.Seconds()
	fmt.Printf("%s: %d clients, %d messages posted, %d of %d deliveries (%.0f/s), p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms, %d exceptions\n",
		*name, r.Clients, r.Posted, r.Delivered, int64(r.Posted)*int64(r.Clients), float64(r.Delivered)/secs,
		ms(r.P50), ms(r.P99), ms(r.P999), ms(r.Max), r.Exceptions)
	if cfg.PID > 0 {
		fmt.Printf("%s: CPU %.2f s over %.1f s (%.2f cores), %.2f µs per delivery; RSS %d KB before, %d KB connected, %d KB at the end: %.1f KB per connection\n",
			*name, r.CPU.Seconds(), secs, r.CPU.Seconds()/secs, float64(r.CPUPerDelivery().Nanoseconds())/1e3,
			r.RSSBefore>>10, r.RSSConnected>>10, r.RSSEnd>>10, float64(r.RSSPerConn())/1024)
	}
	// One line for scripts: key=value.
	fmt.Printf("RESULT name=%s clients=%d posted=%d delivered=%d rate=%.0f p50_ms=%.2f p99_ms=%.2f cpu_us=%.2f rss_kb=%.1f\n",
		*name, r.Clients, r.Posted, r.Delivered, float64(r.Delivered)/secs, ms(r.P50), ms(r.P99),
		float64(r.CPUPerDelivery().Nanoseconds())/1e3, float64(r.RSSPerConn())/1024)
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
