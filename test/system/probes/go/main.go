// Command status-probe shows how grpc-go sees data-path calls: it reads cases
// as JSON on stdin (target, cert_dir, method Subscribe or Ack, request as proto
// JSON), makes each call over mTLS and prints one JSON line per case: the
// status code's name, the ErrorInfo reason and the message.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	bufferv1 "lclstream/client/gen/lclstream/buffer/v1"
)

type testCase struct {
	Target  string          `json:"target"`
	CertDir string          `json:"cert_dir"`
	Method  string          `json:"method"`
	Request json.RawMessage `json:"request"`
}

type outcome struct {
	Code    string  `json:"code"`
	Reason  *string `json:"reason"`
	Message string  `json:"message,omitempty"`
}

func main() {
	var cases []testCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fmt.Fprintln(os.Stderr, "status-probe: reading the cases:", err)
		os.Exit(2)
	}
	for _, c := range cases {
		out, err := call(c)
		if err != nil {
			fmt.Fprintln(os.Stderr, "status-probe:", err)
			os.Exit(2)
		}
		line, _ := json.Marshal(out)
		fmt.Println(string(line))
	}
}

func call(c testCase) (outcome, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(c.CertDir, "tls.crt"), filepath.Join(c.CertDir, "tls.key"))
	if err != nil {
		return outcome{}, err
	}
	caPem, err := os.ReadFile(filepath.Join(c.CertDir, "ca.crt"))
	if err != nil {
		return outcome{}, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPem)
	conn, err := grpc.NewClient(c.Target, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS13})))
	if err != nil {
		return outcome{}, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	buffer := bufferv1.NewBufferServiceClient(conn)
	switch c.Method {
	case "Subscribe":
		req := &bufferv1.SubscribeRequest{}
		if err := protojson.Unmarshal(c.Request, req); err != nil {
			return outcome{}, err
		}
		stream, err := buffer.Subscribe(ctx, req)
		for err == nil {
			_, err = stream.Recv()
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return outcomeOf(err), nil
	case "Ack":
		req := &bufferv1.AckRequest{}
		if err := protojson.Unmarshal(c.Request, req); err != nil {
			return outcome{}, err
		}
		_, err := buffer.Ack(ctx, req)
		return outcomeOf(err), nil
	}
	return outcome{}, fmt.Errorf("unknown method %q", c.Method)
}

func outcomeOf(err error) outcome {
	s := status.Convert(err)
	out := outcome{Code: "OK", Message: s.Message()}
	if s.Code() != codes.OK {
		out.Code = strings.ToUpper(toSnake(s.Code().String()))
	}
	for _, d := range s.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			out.Reason = &info.Reason
		}
	}
	return out
}

// toSnake turns grpc-go's code names (NotFound) into the canonical ones (NOT_FOUND).
func toSnake(name string) string {
	var b strings.Builder
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}
