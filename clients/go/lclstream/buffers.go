package lclstream

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// reusedBuffers is a pool of buffers handed out without zeroing them first.
// grpc-go's own pool clears every buffer it hands out, which cost a tenth of
// a consumer's CPU at 1 MiB batches. Every buffer gRPC takes from a pool it
// fills whole before reading it (a frame's payload, a message gathered from
// its frames), so old bytes never show.
type reusedBuffers struct {
	tiers [maxTier + 1]sync.Pool // tier t holds buffers of 1<<t bytes
}

const (
	minTier = 8  // 256 bytes; smaller requests get a buffer this size
	maxTier = 27 // 128 MiB, above the message limit; larger ones are not pooled
)

func tierOf(size int) int {
	if size <= 1<<minTier {
		return minTier
	}
	return bits.Len(uint(size - 1))
}

// Get returns a buffer of length size, its contents whatever they were.
func (p *reusedBuffers) Get(size int) *[]byte {
	t := tierOf(size)
	if t > maxTier {
		b := make([]byte, size)
		return &b
	}
	if b, ok := p.tiers[t].Get().(*[]byte); ok {
		*b = (*b)[:size]
		return b
	}
	b := make([]byte, size, 1<<t)
	return &b
}

// Put takes back a buffer Get returned.
func (p *reusedBuffers) Put(b *[]byte) {
	c := cap(*b)
	t := tierOf(c)
	if t > maxTier || c != 1<<t { // not one of ours
		return
	}
	p.tiers[t].Put(b)
}

var buffers = &reusedBuffers{}

// gatheringCodec is the proto codec that decodes a subscription's batches in
// place: their arrays are slices of the one buffer the message's frames are
// gathered into, which they keep alive (grpc-go's codec gathers into a zeroed
// pooled buffer, then copies every array out of it; the copy took a tenth of
// a consumer's CPU at 1 MiB batches). Other messages are gathered into a
// reused buffer and decoded as usual; encoding is the standard codec's.
type gatheringCodec struct{ encoding.CodecV2 }

func newGatheringCodec() gatheringCodec {
	return gatheringCodec{encoding.GetCodecV2("proto")}
}

// inPlace is what vtprotobuf generates for the messages buf.gen.go.yaml names.
type inPlace interface {
	UnmarshalVTUnsafe([]byte) error
}

func (c gatheringCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(inPlace); ok {
		return m.UnmarshalVTUnsafe(data.Materialize())
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("failed to unmarshal, message is %T, want proto.Message", v)
	}
	buf := data.MaterializeToBuffer(buffers)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}
