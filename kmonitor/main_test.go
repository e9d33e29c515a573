package main

import (
	"os"
	"testing"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

func TestMain(m *testing.M) { os.Exit(testproc.Main(m)) }
