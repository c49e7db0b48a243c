package lclstream

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	datav1 "lclstream/client/gen/lclstream/data/v1"
	requestv1 "lclstream/client/gen/lclstream/request/v1"
)

// The real mesh, started by test/system/go-client.test.ts, described by its endpoints.json.
func endpoints(t *testing.T) map[string]any {
	path := os.Getenv("LCLSTREAM_ENDPOINTS")
	if path == "" {
		t.Fatal("LCLSTREAM_ENDPOINTS is not set: this test runs against a real mesh; run it with `npm run test:system`")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]any
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// A client of the user `lclstream up` made, closed when the test ends.
func userClient(t *testing.T) *Client {
	e := endpoints(t)
	client, err := FromCertDir(e["request"].(string), e["certDir"].(string))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return client
}

func TestConsumesAWholeRequestAndChecksTheTotals(t *testing.T) {
	client := userClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The producer is an lclstreamer config, with lclstream's synthetic digitizer.
	req, err := client.CreateRequest(ctx, []byte(`{"experiment": "default", "producer": {
		"source_identifier": "synthetic:tof:run=2", "skip_incomplete_events": false,
		"event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 80, "seed": 2},
		"data_sources": {"tof": {"type": "SyntheticDigitizer", "channels": 2, "samples": 128}},
		"processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 8},
		"data_serializer": {"type": "NativeBinarySerializer"}, "data_handlers": []}}`))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	got, err := client.Consume(ctx, req.Name, "default", func(seq uint64, b *datav1.EventBatch) error {
		if seen[seq] {
			t.Errorf("seq %d arrived twice", seq)
		}
		seen[seq] = true
		if tof := b.GetColumns().GetFields()["tof"]; tof == nil || len(tof.Shape) != 3 || tof.Shape[0] != uint64(len(b.EventIndices)) {
			t.Errorf("batch %d lacks a tof array with one row per event", seq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Batches != 10 || got.Events != 80 || got.Totals.BatchCount != 10 || got.PayloadBytes == 0 {
		t.Fatalf("got %+v, want 10 batches, 80 events", got)
	}
}

func TestConsumesEveryShardOfAShardedRequest(t *testing.T) {
	client := userClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := client.CreateRequest(ctx, []byte(`{"parallelism": 4, "shard_count": 3, "producer": {
		"source_identifier": "synthetic:tof:run=3", "skip_incomplete_events": false,
		"event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 96, "seed": 3},
		"data_sources": {"tof": {"type": "SyntheticDigitizer", "channels": 1, "samples": 64}},
		"processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 4},
		"data_serializer": {"type": "NativeBinarySerializer"}, "data_handlers": []}}`))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	got, err := client.Consume(ctx, req.Name, "default", func(_ uint64, b *datav1.EventBatch) error {
		for _, i := range b.EventIndices {
			if seen[i] {
				t.Errorf("event %d arrived twice", i)
			}
			seen[i] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 96 || got.Events != 96 || got.Totals.EventCount != 96 || len(got.Totals.ProducerTotals) != 4 {
		t.Fatalf("got %+v and %d distinct events, want 96 events from 4 ranks", got, len(seen))
	}
}

func TestConsumersOfAnAssignedGroupDivideTheShards(t *testing.T) {
	client := userClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := client.CreateRequest(ctx, []byte(`{"parallelism": 4, "shard_count": 3,
		"consumer_groups": [{"name": "workers", "shard_assignment": "SHARD_ASSIGNMENT_ASSIGNED"}],
		"producer": {
		"source_identifier": "synthetic:tof:run=4", "skip_incomplete_events": false,
		"event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 96, "seed": 4, "rate_hz": 60, "paced": true},
		"data_sources": {"tof": {"type": "SyntheticDigitizer", "channels": 1, "samples": 64}},
		"processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 4},
		"data_serializer": {"type": "NativeBinarySerializer"}, "data_handlers": []}}`))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint64]bool{}
	perConsumer := [2]int{}
	firstRead := make(chan struct{})
	var once sync.Once
	consume := func(who int) error {
		_, err := client.Consume(ctx, req.Name, "workers", func(_ uint64, b *datav1.EventBatch) error {
			mu.Lock()
			defer mu.Unlock()
			for _, i := range b.EventIndices {
				seen[i] = true
			}
			perConsumer[who]++
			if perConsumer[0] >= 2 {
				once.Do(func() { close(firstRead) })
			}
			return nil
		})
		return err
	}
	errs := make(chan error, 2)
	go func() { errs <- consume(0) }()
	<-firstRead
	go func() { errs <- consume(1) }() // joins: the group rebalances
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 96 || perConsumer[1] == 0 {
		t.Fatalf("%d distinct events (want 96), batches per consumer %v (the second must have had shards)", len(seen), perConsumer)
	}
}

func TestRefusesABadRequestWithInvalidArgument(t *testing.T) {
	client := userClient(t)
	_, err := client.CreateRequest(context.Background(), []byte(`{"producer": {"source_identifier": "synthetic:tof:run=1", "skip_incomplete_events": false, "event_source": {"type": "nope"}}}`))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
}

func TestConsumesOneStreamByNameAndRefusesAnUnknownOne(t *testing.T) {
	client := userClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := client.CreateRequest(ctx, []byte(`{"experiment": "default", "producer": {
		"source_identifier": "synthetic:tof:run=3", "skip_incomplete_events": false,
		"event_source": {"type": "InternalEventSource", "number_of_events_to_generate": 24, "seed": 3},
		"data_sources": {"tof": {"type": "SyntheticDigitizer", "channels": 1, "samples": 64}},
		"processing_pipeline": {"type": "BatchProcessingPipeline", "batch_size": 4},
		"data_serializer": {"type": "NativeBinarySerializer"}, "data_handlers": []}}`))
	if err != nil {
		t.Fatal(err)
	}
	// The stream is made once the request service has placed it.
	for req.Stream == "" {
		time.Sleep(100 * time.Millisecond)
		res, err := client.Requests.GetDataRequest(ctx, &requestv1.GetDataRequestRequest{Name: req.Name})
		if err != nil {
			t.Fatal(err)
		}
		req = res.DataRequest
	}
	batches := 0
	totals, err := client.ConsumeStream(ctx, req.BufferEndpoint, req.Stream, "default", func(uint64, *datav1.EventBatch) error {
		batches++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if batches != 6 || totals.BatchCount != 6 || totals.EventCount != 24 {
		t.Fatalf("got %d batches and totals %+v, want 6 batches of 24 events", batches, totals)
	}
	_, err = client.ConsumeStream(ctx, req.BufferEndpoint, "streams/nope", "default", func(uint64, *datav1.EventBatch) error { return nil })
	if status.Code(err) != codes.NotFound {
		t.Fatalf("got %v, want NotFound for an unknown stream", err)
	}
}
