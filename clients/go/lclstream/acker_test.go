package lclstream

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	bufferv1 "lclstream/client/gen/lclstream/buffer/v1"
)

// fakeBuffer answers GetStream with one stream's groups and records each Ack's seqs; these need no mesh.
type fakeBuffer struct {
	bufferv1.BufferServiceClient
	groups []*bufferv1.ConsumerGroup
	acks   chan []uint64
}

func (f *fakeBuffer) GetStream(context.Context, *bufferv1.GetStreamRequest, ...grpc.CallOption) (*bufferv1.GetStreamResponse, error) {
	return &bufferv1.GetStreamResponse{Stream: &bufferv1.Stream{ConsumerGroups: f.groups}}, nil
}

func (f *fakeBuffer) Ack(_ context.Context, r *bufferv1.AckRequest, _ ...grpc.CallOption) (*bufferv1.AckResponse, error) {
	f.acks <- r.Seqs
	return &bufferv1.AckResponse{AckedCount: uint64(len(r.Seqs))}, nil
}

func TestGroupWindowIsTheGroupsMaxInFlight(t *testing.T) {
	f := &fakeBuffer{groups: []*bufferv1.ConsumerGroup{{Name: "other", MaxInFlight: 4}, {Name: "g0", MaxInFlight: 40}, {Name: "plain"}}}
	for group, want := range map[string]int{"g0": 40, "plain": defaultMaxInFlight, "absent": defaultMaxInFlight} {
		if got, err := groupWindow(context.Background(), f, "streams/s", group); err != nil || got != want {
			t.Fatalf("%s: window %d (%v), want %d", group, got, err, want)
		}
	}
}

// A full group goes at once, without waiting for the timer; the rest goes when the timer fires.
func TestAckerSendsAFullGroupAtOnce(t *testing.T) {
	f := &fakeBuffer{acks: make(chan []uint64, 4)}
	id := "c1"
	a := newAcker(context.Background(), f, "streams/s", "g0", &id, 8)
	defer a.close()
	for seq := uint64(1); seq <= 10; seq++ {
		if err := a.add(seq); err != nil {
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
