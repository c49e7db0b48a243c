package lclstream

import (
	"fmt"
	"math/bits"
	"strings"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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

// gatheringCodec is the proto codec with its messages gathered from their
// frames into reused buffers (grpc-go's own takes a zeroed one); decoding
// and encoding are the standard codec's.
type gatheringCodec struct{ encoding.CodecV2 }

func newGatheringCodec() gatheringCodec {
	return gatheringCodec{encoding.GetCodecV2("proto")}
}

func (c gatheringCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("failed to unmarshal, message is %T, want proto.Message", v)
	}
	buf := data.MaterializeToBuffer(buffers)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// inPlace is what vtprotobuf generates for the messages buf.gen.go.yaml names.
type inPlace interface {
	UnmarshalVTUnsafe([]byte) error
}

// borrowingCodec decodes one subscription's messages (Client.BorrowBatches)
// in the same memory each time: a batch's arrays are slices of it, valid
// until the next message arrives, and nothing is allocated for them. A fresh
// 1 MiB a batch, zeroed and faulted in by the kernel, was most of what the
// client spent decoding (BenchmarkDecodeBatch). Strings are copied out, so
// what the caller keeps of them stays as it was.
type borrowingCodec struct {
	gatheringCodec
	memory []byte
}

func (c *borrowingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(inPlace)
	if !ok {
		return c.gatheringCodec.Unmarshal(data, v)
	}
	n := data.Len()
	if cap(c.memory) < n {
		c.memory = make([]byte, n)
	}
	data.CopyTo(c.memory[:n])
	if err := m.UnmarshalVTUnsafe(c.memory[:n]); err != nil {
		return err
	}
	cloneStrings(v.(proto.Message).ProtoReflect())
	return nil
}

// cloneStrings gives every string in m, map keys included, memory of its own.
func cloneStrings(m protoreflect.Message) {
	var strs []protoreflect.FieldDescriptor // set after the walk: Range must not see its message change
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			entries := v.Map()
			type entry struct {
				key   protoreflect.MapKey
				value protoreflect.Value
			}
			var all []entry
			entries.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				all = append(all, entry{k, v})
				return true
			})
			for _, e := range all {
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					cloneStrings(e.value.Message())
				} else if fd.MapValue().Kind() == protoreflect.StringKind {
					e.value = protoreflect.ValueOfString(strings.Clone(e.value.String()))
				}
				if fd.MapKey().Kind() == protoreflect.StringKind {
					entries.Clear(e.key)
					e.key = protoreflect.ValueOfString(strings.Clone(e.key.String())).MapKey()
				}
				entries.Set(e.key, e.value)
			}
		case fd.IsList():
			list := v.List()
			for i := range list.Len() {
				if fd.Kind() == protoreflect.MessageKind {
					cloneStrings(list.Get(i).Message())
				} else if fd.Kind() == protoreflect.StringKind {
					list.Set(i, protoreflect.ValueOfString(strings.Clone(list.Get(i).String())))
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			cloneStrings(v.Message())
		case fd.Kind() == protoreflect.StringKind:
			strs = append(strs, fd)
		}
		return true
	})
	for _, fd := range strs {
		m.Set(fd, protoreflect.ValueOfString(strings.Clone(m.Get(fd).String())))
	}
}
