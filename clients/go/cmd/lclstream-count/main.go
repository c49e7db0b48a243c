// lclstream-count creates a data request from a JSON file, subscribes to it
// and counts the bytes that arrive, checking the end-of-stream totals.
//
//	go run ./cmd/lclstream-count -url https://HOST:8443 -cert-dir ~/.lclstream/certs/user request.json
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	datav1 "lclstream/client/gen/lclstream/data/v1"
	"lclstream/client/lclstream"
)

func main() {
	url := flag.String("url", "", "the data request service, https://host:port")
	certDir := flag.String("cert-dir", "", "ca.crt, tls.crt and tls.key from `lclstream enroll`")
	group := flag.String("group", "default", "the consumer group to join")
	flag.Parse()
	if *url == "" || *certDir == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: lclstream-count -url URL -cert-dir DIR REQUEST.json")
		os.Exit(2)
	}
	if err := run(*url, *certDir, *group, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "lclstream-count:", err)
		os.Exit(1)
	}
}

func run(url, certDir, group, file string) error {
	body, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	client, err := lclstream.FromCertDir(url, certDir)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := context.Background()
	req, err := client.CreateRequest(ctx, body)
	if err != nil {
		return err
	}
	started := time.Now()
	got, err := client.Consume(ctx, req.Name, group, func(uint64, *datav1.EventBatch) error { return nil })
	if err != nil {
		return err
	}
	seconds := time.Since(started).Seconds()
	fmt.Printf("%s: %d batches, %d events, %d bytes (%.1f MB/s); totals match\n", req.Name, got.Batches, got.Events, got.PayloadBytes, float64(got.PayloadBytes)/seconds/1e6)
	return nil
}
