// lclstream-drain reads batches a buffer stream holds with the client's own
// consumer (ConsumeStream: its connection, decoding and acknowledgements;
// batches borrowed, as it keeps none),
// times them after a warm-up and prints what it measured as one JSON line:
// what `npm run bench` compares with a bare HTTP/2 reader.
//
//	go run ./cmd/lclstream-drain -url https://HOST:PORT -cert-dir DIR -stream streams/ID -group g0 -count 800 -warmup 200
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	datav1 "lclstream/client/gen/lclstream/data/v1"
	"lclstream/client/lclstream"
)

// errCounted ends the consumption once count batches have arrived.
var errCounted = errors.New("counted")

func cpuMs() float64 {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e6
}

func main() {
	url := flag.String("url", "", "the buffer, https://host:port")
	certDir := flag.String("cert-dir", "", "ca.crt, tls.crt and tls.key")
	stream := flag.String("stream", "", "the stream, streams/ID")
	group := flag.String("group", "g0", "the consumer group")
	count := flag.Int("count", 800, "batches to read, the warm-up included")
	warmup := flag.Int("warmup", 200, "batches read before the timing starts")
	flag.Parse()
	client, err := lclstream.FromCertDir(*url, *certDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lclstream-drain:", err)
		os.Exit(1)
	}
	defer client.Close()
	// It only counts each batch's bytes, as `lclstream get` writes each out before it takes the next.
	client.BorrowBatches = true
	var received, bytes int
	var started time.Time
	var cpuAtStart float64
	_, err = client.ConsumeStream(context.Background(), *url, *stream, *group, func(_ uint64, b *datav1.EventBatch) error {
		received++
		if received == *warmup {
			started, cpuAtStart = time.Now(), cpuMs()
		} else if received > *warmup {
			for _, a := range b.GetColumns().GetFields() {
				bytes += len(a.Data)
			}
			if s := b.GetSerialized(); s != nil {
				bytes += len(s.Data)
			}
		}
		if received >= *count {
			return errCounted
		}
		return nil
	})
	if !errors.Is(err, errCounted) {
		fmt.Fprintln(os.Stderr, "lclstream-drain: the stream ended before", *count, "batches:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string]float64{"bytes": float64(bytes), "seconds": time.Since(started).Seconds(), "cpuMs": cpuMs() - cpuAtStart})
	fmt.Println(string(out))
}
