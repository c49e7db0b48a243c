package lclstream

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	bufferv1 "lclstream/client/gen/lclstream/buffer/v1"
	datav1 "lclstream/client/gen/lclstream/data/v1"
)

// framed splits an encoded message into 16 KiB pieces, as gRPC receives it
// from HTTP/2 DATA frames, each in a buffer from the reused pool.
func framed(t *testing.T, m proto.Message) mem.BufferSlice {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m) // the same layout for messages of the same shape
	if err != nil {
		t.Fatal(err)
	}
	var s mem.BufferSlice
	for len(b) > 0 {
		n := min(len(b), 16<<10)
		piece := buffers.Get(n)
		copy(*piece, b[:n])
		s = append(s, mem.NewBuffer(piece, buffers))
		b = b[n:]
	}
	return s
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i) ^ seed
	}
	return b
}

func batchResponse(stream, column string, arrayBytes int, seed byte) *bufferv1.SubscribeResponse {
	return &bufferv1.SubscribeResponse{Seq: 7, Kind: &bufferv1.SubscribeResponse_Batch{Batch: &datav1.EventBatch{
		Stream: stream, ProducerRank: 2, Seq: 7, EventIndices: []uint64{10, 11, 12, 13},
		Payload: &datav1.EventBatch_Columns{Columns: &datav1.Columns{Fields: map[string]*datav1.Array{
			column:   {Dtype: datav1.DataType_DATA_TYPE_UINT16, Shape: []uint64{4, 512, 1024}, Data: pattern(arrayBytes, seed)},
			"energy": {Dtype: datav1.DataType_DATA_TYPE_FLOAT64, Shape: []uint64{4}, Data: pattern(32, seed+1)},
		}}},
	}}}
}

// allocatedBy is how many bytes f allocated.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestABatchDecodesFromReusedBuffersAndOwnsItsArrays(t *testing.T) {
	const arrayBytes = 4 << 20
	sent := batchResponse("streams/s1", "jungfrau", arrayBytes, 1)
	frames := framed(t, sent)
	got := &bufferv1.SubscribeResponse{}
	if err := newGatheringCodec().Unmarshal(frames, got); err != nil {
		t.Fatal(err)
	}
	frames.Free()
	if !proto.Equal(got, sent) {
		t.Fatal("the decoded batch differs from the one sent")
	}
	// The frames' buffers go back to the pool and are written again; the batch must not share them.
	for range 8 {
		b := buffers.Get(16 << 10)
		clear(*b)
		buffers.Put(b)
	}
	if !bytes.Equal(got.GetBatch().GetColumns().Fields["jungfrau"].Data, pattern(arrayBytes, 1)) {
		t.Fatal("the batch's array changed when the frames' buffers were reused")
	}
}

func TestBorrowedBatchesShareOneMemoryAndKeepTheirStrings(t *testing.T) {
	const arrayBytes = 4 << 20
	codec := &borrowingCodec{gatheringCodec: newGatheringCodec()}
	first, second := batchResponse("streams/s1", "jungfrau", arrayBytes, 1), batchResponse("streams/s2", "epix10ka", arrayBytes, 9)
	a, b := &bufferv1.SubscribeResponse{}, &bufferv1.SubscribeResponse{}
	decode := func(frames mem.BufferSlice, into *bufferv1.SubscribeResponse) {
		if err := codec.Unmarshal(frames, into); err != nil {
			t.Fatal(err)
		}
		frames.Free()
	}
	decode(framed(t, first), a)
	if !proto.Equal(a, first) {
		t.Fatal("the decoded batch differs from the one sent")
	}
	stream := a.GetBatch().Stream
	var column string
	for name := range a.GetBatch().GetColumns().Fields {
		if name != "energy" {
			column = name
		}
	}
	// The second batch lands in the first one's memory: nothing the size of its arrays is allocated.
	frames := framed(t, second)
	if allocated := allocatedBy(func() { decode(frames, b) }); allocated > arrayBytes/4 {
		t.Fatalf("decoding a borrowed %d-byte batch allocated %d bytes", arrayBytes, allocated)
	}
	if !proto.Equal(b, second) {
		t.Fatal("the decoded batch differs from the one sent")
	}
	if stream != "streams/s1" || column != "jungfrau" {
		t.Fatalf("the first batch's strings changed with the second batch: %q, %q", stream, column)
	}
	// As documented: the first batch's arrays now hold the second's bytes.
	if !bytes.Equal(a.GetBatch().GetColumns().Fields["jungfrau"].Data, pattern(arrayBytes, 9)) {
		t.Fatal("a borrowed batch's array was not reused")
	}
}

func TestOtherMessagesDecodeFromReusedBuffersAndKeepTheirValues(t *testing.T) {
	codec := newGatheringCodec()
	first := &bufferv1.GetStreamRequest{Name: "streams/" + strings.Repeat("a-long-name-", 4000)} // three frames
	second := &bufferv1.GetStreamRequest{Name: "streams/second"}
	a, b := &bufferv1.GetStreamRequest{}, &bufferv1.GetStreamRequest{}
	for _, c := range []struct {
		sent, into proto.Message
	}{{first, a}, {second, b}} {
		frames := framed(t, c.sent)
		if err := codec.Unmarshal(frames, c.into); err != nil {
			t.Fatal(err)
		}
		frames.Free()
	}
	if !proto.Equal(a, first) || !proto.Equal(b, second) {
		t.Fatalf("decoded %v and %v, sent %v and %v", a, b, first, second)
	}
}

func TestReusedBuffersComeInPowersOfTwoAndRefuseStrangers(t *testing.T) {
	for _, size := range []int{1, 256, 257, 16 << 10, 1<<20 + 5} {
		b := buffers.Get(size)
		if len(*b) != size || cap(*b) < size || cap(*b)&(cap(*b)-1) != 0 {
			t.Fatalf("Get(%d) gave length %d, capacity %d", size, len(*b), cap(*b))
		}
		buffers.Put(b)
	}
	odd := make([]byte, 1000)
	buffers.Put(&odd) // not a power of two: not pooled, and no panic
	if b := buffers.Get(1000); cap(*b) != 1024 {
		t.Fatalf("Get(1000) gave capacity %d, want 1024", cap(*b))
	}
	huge := buffers.Get(1<<maxTier + 1)
	if len(*huge) != 1<<maxTier+1 {
		t.Fatal("a buffer above the largest tier has the wrong length")
	}
}

// BenchmarkDecodeBatch decodes a 1 MiB batch as it arrives (64 frames of
// 16 KiB) with grpc-go's codec, and with this client's two.
func BenchmarkDecodeBatch(b *testing.B) {
	sent, err := proto.Marshal(&bufferv1.SubscribeResponse{Seq: 1, Kind: &bufferv1.SubscribeResponse_Batch{Batch: &datav1.EventBatch{
		Stream: "streams/s1", EventIndices: []uint64{1, 2, 3, 4},
		Payload: &datav1.EventBatch_Columns{Columns: &datav1.Columns{Fields: map[string]*datav1.Array{
			"frames": {Dtype: datav1.DataType_DATA_TYPE_FLOAT32, Shape: []uint64{4, 256, 256}, Data: pattern(1<<20, 5)},
		}}},
	}}})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		codec encoding.CodecV2
		pool  mem.BufferPool
	}{
		{"grpc-go", encoding.GetCodecV2("proto"), mem.DefaultBufferPool()},
		{"reused buffers", newGatheringCodec(), buffers},
		{"borrowed", &borrowingCodec{gatheringCodec: newGatheringCodec()}, buffers},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(sent)))
			for b.Loop() {
				var frames mem.BufferSlice
				for rest := sent; len(rest) > 0; {
					n := min(len(rest), 16<<10)
					piece := c.pool.Get(n)
					copy(*piece, rest[:n])
					frames = append(frames, mem.NewBuffer(piece, c.pool))
					rest = rest[n:]
				}
				if err := c.codec.Unmarshal(frames, &bufferv1.SubscribeResponse{}); err != nil {
					b.Fatal(err)
				}
				frames.Free()
			}
		})
	}
}
