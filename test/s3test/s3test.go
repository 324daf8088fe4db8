// Package s3test serves the S3 protocol in process (gofakes3, in memory) for tests: a bucket
// opened through gocloud's s3blob against it exercises the same requests (ranged GETs,
// multipart uploads, listings, deletes) as against a real S3.
package s3test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

// Server is an S3 server for one test.
type Server struct {
	// URL is its endpoint.
	URL string
	// Client is an S3 client of it.
	Client *s3.Client
}

// Start starts a server, stopped when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	tb.Cleanup(srv.Close)
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		// The server checks what S3 required before flexible checksums.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return &Server{URL: srv.URL, Client: client}
}

// Bucket creates a bucket and opens it through s3blob; it is closed when the test ends.
func (s *Server) Bucket(tb testing.TB, name string) *blob.Bucket {
	tb.Helper()
	ctx := context.Background()
	_, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	require.NoError(tb, err)
	b, err := s3blob.OpenBucket(ctx, s.Client, name, nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { b.Close() })
	return b
}
