package lclstream

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	bufferv1 "lclstream/client/gen/lclstream/buffer/v1"
)

// fakeBuffer records each Ack's seqs; these tests need no mesh.
type fakeBuffer struct {
	bufferv1.BufferServiceClient
	acks chan []uint64
}

func (f *fakeBuffer) Ack(_ context.Context, r *bufferv1.AckRequest, _ ...grpc.CallOption) (*bufferv1.AckResponse, error) {
	f.acks <- r.Seqs
	return &bufferv1.AckResponse{AckedCount: uint64(len(r.Seqs))}, nil
}

func TestWindowIsWhatTheStartedMessageSays(t *testing.T) {
	for _, c := range []struct {
		started *bufferv1.SubscribeStarted
		want    window
	}{
		{&bufferv1.SubscribeStarted{MaxInFlight: 1024, MaxInFlightBytes: 32 << 20}, window{1024, 32 << 20}},
		{&bufferv1.SubscribeStarted{MaxInFlight: 40}, window{40, 0}},
		{&bufferv1.SubscribeStarted{}, window{16, 0}}, // a buffer from before byte windows
	} {
		if got := windowOf(c.started); got != c.want {
			t.Fatalf("%v: window %v, want %v", c.started, got, c.want)
		}
	}
}

// A full group goes at once, without waiting for the timer; the rest goes when the timer fires.
func TestAckerSendsAFullGroupAtOnce(t *testing.T) {
	f := &fakeBuffer{acks: make(chan []uint64, 4)}
	a := newAcker(context.Background(), f, "streams/s", "g0", "c1", window{batches: 16})
	defer a.close()
	for seq := uint64(1); seq <= 10; seq++ {
		if err := a.add(seq, 1<<30); err != nil {
			t.Fatal(err)
		}
	}
	first := <-f.acks
	if len(first) != 8 || first[0] != 1 || first[7] != 8 {
		t.Fatalf("first Ack %v, want seqs 1-8 (a group that waited for the timer would hold all 10)", first)
	}
	if rest := <-f.acks; len(rest) != 2 || rest[0] != 9 || rest[1] != 10 {
		t.Fatalf("second Ack %v, want seqs 9-10", rest)
	}
}

// With a byte window, a group goes once it holds half of it, whatever its count.
func TestAckerSendsHalfTheWindowsBytes(t *testing.T) {
	f := &fakeBuffer{acks: make(chan []uint64, 4)}
	a := newAcker(context.Background(), f, "streams/s", "g0", "c1", window{batches: 1024, bytes: 1000})
	defer a.close()
	for seq, bytes := range []uint64{0, 300, 200, 100} {
		if seq > 0 {
			if err := a.add(uint64(seq), bytes); err != nil {
				t.Fatal(err)
			}
		}
	}
	if first := <-f.acks; len(first) != 2 || first[0] != 1 || first[1] != 2 {
		t.Fatalf("first Ack %v, want seqs 1-2 (500 bytes of a 1000-byte window)", first)
	}
	if rest := <-f.acks; len(rest) != 1 || rest[0] != 3 {
		t.Fatalf("second Ack %v, want seq 3 (by the timer)", rest)
	}
}
