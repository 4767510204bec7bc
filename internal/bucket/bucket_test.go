package bucket

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestLocationValidate(t *testing.T) {
	good := Location{Bucket: "shop-releases", Prefix: "shop/store/", Region: "eu-west-1"}
	for name, tc := range map[string]struct {
		edit func(*Location)
		want string // "" when valid
	}{
		"good":                {func(*Location) {}, ""},
		"empty prefix":        {func(l *Location) { l.Prefix = "" }, ""},
		"endpoint":            {func(l *Location) { l.Endpoint = "http://127.0.0.1:4566" }, ""},
		"both credentials":    {func(l *Location) { l.AccessKeyID, l.SecretAccessKey = "id", "key" }, ""},
		"upper-case bucket":   {func(l *Location) { l.Bucket = "Shop" }, "invalid bucket"},
		"short bucket":        {func(l *Location) { l.Bucket = "ab" }, "invalid bucket"},
		"prefix climbs":       {func(l *Location) { l.Prefix = "shop/../other/" }, "invalid prefix"},
		"prefix with a space": {func(l *Location) { l.Prefix = "shop store/" }, "invalid prefix"},
		"no region":           {func(l *Location) { l.Region = "" }, "invalid region"},
		"key without secret":  {func(l *Location) { l.AccessKeyID = "id" }, "needs its secret"},
		"secret without key":  {func(l *Location) { l.SecretAccessKey = "key" }, "needs its secret"},
		"endpoint scheme":     {func(l *Location) { l.Endpoint = "ftp://s3.example.com" }, "invalid endpoint"},
		"endpoint no host":    {func(l *Location) { l.Endpoint = "https://" }, "invalid endpoint"},
		"endpoint with user":  {func(l *Location) { l.Endpoint = "https://id:key@s3.example.com" }, "invalid endpoint"},
	} {
		t.Run(name, func(t *testing.T) {
			l := good
			tc.edit(&l)
			err := l.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if got := good.Where(); got != "s3://shop-releases/shop/store/" {
		t.Errorf("Where = %q", got)
	}
	if got := good.Key("current"); got != "shop/store/current" {
		t.Errorf("Key = %q", got)
	}
}

// s3Error is an S3 error answer as a server sends it.
func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>test</Message></Error>`, code)
}

// TestErrors: the SDK's errors for each answer of a server on loopback
// are told apart as the store needs them, and a client tries each
// request exactly its Attempts times.
func TestErrors(t *testing.T) {
	type answer struct {
		status int
		code   string // "" for an answer without a body (HEAD)
	}
	var (
		calls atomic.Int64
		reply atomic.Pointer[answer]
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		a := reply.Load()
		if a.code == "" || r.Method == http.MethodHead {
			w.WriteHeader(a.status)
			return
		}
		s3Error(w, a.status, a.code)
	}))
	defer srv.Close()
	loc := Location{Bucket: "shop-releases", Region: "us-east-1", Endpoint: srv.URL, AccessKeyID: "id", SecretAccessKey: "key"}
	c, err := loc.Client(context.Background(), Retries{Attempts: 3, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	get := func() error {
		_, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String("k")})
		return err
	}
	put := func() error {
		_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String("k"),
			Body: strings.NewReader("x"), IfNoneMatch: aws.String("*")})
		return err
	}
	head := func() error {
		_, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String("k")})
		return err
	}
	type is struct{ notFound, noBucket, precondition, unreachable bool }
	for name, tc := range map[string]struct {
		answer
		call  func() error
		want  is
		tries int64
	}{
		"no such key":           {answer{404, "NoSuchKey"}, get, is{notFound: true}, 1},
		"no such bucket":        {answer{404, "NoSuchBucket"}, get, is{notFound: true, noBucket: true}, 1},
		"head of a missing key": {answer{404, ""}, head, is{notFound: true}, 1},
		"precondition failed":   {answer{412, "PreconditionFailed"}, put, is{precondition: true}, 1},
		"conditional conflict":  {answer{409, "ConditionalRequestConflict"}, put, is{precondition: true}, 1},
		"access denied":         {answer{403, "AccessDenied"}, get, is{}, 1},
		"unavailable":           {answer{503, "ServiceUnavailable"}, get, is{}, 3},
	} {
		t.Run(name, func(t *testing.T) {
			reply.Store(&tc.answer)
			calls.Store(0)
			err := tc.call()
			if err == nil {
				t.Fatal("no error")
			}
			got := is{IsNotFound(err), IsNoBucket(err), IsPreconditionFailed(err), IsUnreachable(err)}
			if got != tc.want {
				t.Errorf("got %+v, want %+v for %v", got, tc.want, err)
			}
			if n := calls.Load(); n != tc.tries {
				t.Errorf("%d requests, want %d", n, tc.tries)
			}
		})
	}

	// Nobody listens: unreachable, and nothing else.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	loc.Endpoint = "http://" + closed
	c, err = loc.Client(context.Background(), Retries{Attempts: 2, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = get()
	if err == nil || !IsUnreachable(err) || IsNotFound(err) || IsPreconditionFailed(err) {
		t.Errorf("a closed port: unreachable %v, not found %v, precondition %v: %v", IsUnreachable(err), IsNotFound(err), IsPreconditionFailed(err), err)
	}
	if IsUnreachable(nil) {
		t.Error("no error is unreachable")
	}
}
