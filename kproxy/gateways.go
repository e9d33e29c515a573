package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/devicehive"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/httpapi"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/pubsub"
)

// mountGateways mounts the WebSocket gateways the websocket section turns on
// at their paths of srv. Each one's Shutdown runs when srv drains, before the
// core flushes its Kafka clients; the pubsub gateway's Kafka client is closed
// after it.
func mountGateways(srv *httpapi.Server, core *proxy.Proxy, log *slog.Logger) error {
	ws := core.Config().WebSocket
	if ws.DevicehivePath != "" {
		h, err := devicehive.New(devicehiveOptions(core, log))
		if err != nil {
			return err
		}
		srv.Handle(ws.DevicehivePath, h)
		srv.OnDrain(h.Shutdown)
		log.Info("devicehive gateway", "path", ws.DevicehivePath, "initial_offset", ws.InitialOffset,
			"default_consumer_group", ws.DefaultConsumerGroup)
	}
	if ws.PubsubPath != "" {
		cl, err := core.NewKafkaClient()
		if err != nil {
			return err
		}
		h, err := pubsub.New(pubsubOptions(core, log, cl))
		if err != nil {
			cl.Close()
			return err
		}
		srv.Handle(ws.PubsubPath, h)
		srv.OnDrain(func(ctx context.Context) error {
			defer cl.Close()
			return h.Shutdown(ctx)
		})
		log.Info("pubsub gateway", "path", ws.PubsubPath)
	}
	return nil
}

// devicehiveOptions maps the configuration onto the devicehive gateway's
// options.
func devicehiveOptions(core *proxy.Proxy, log *slog.Logger) devicehive.Options {
	c := core.Config()
	ws, d := c.WebSocket, c.WebSocket.Devicehive
	return devicehive.Options{
		Core:              core,
		DefaultGroup:      ws.DefaultConsumerGroup,
		StartAtOldest:     ws.InitialOffset == "oldest",
		AllowTopicCreate:  d.AllowTopicCreate,
		MaxConnections:    d.MaxConnections,
		MaxFrameBytes:     int64(d.MaxFrameBytes),
		MaxSubscriptions:  d.MaxSubscriptions,
		SendQueueBytes:    d.SendQueueBytes,
		MaxNotifsPerFrame: d.MaxNotifsPerFrame,
		WriteTimeout:      time.Duration(ws.WriteTimeoutMs) * time.Millisecond,
		RequestTimeout:    time.Duration(c.ProduceTimeoutMs) * time.Millisecond,
		Logger:            log.With("door", "devicehive"),
		Registerer:        core.Registry(),
	}
}

// pubsubOptions maps the configuration onto the pubsub gateway's options;
// cl is the Kafka client it reads through.
func pubsubOptions(core *proxy.Proxy, log *slog.Logger, cl *kgo.Client) pubsub.Options {
	ws, p := core.Config().WebSocket, core.Config().WebSocket.Pubsub
	return pubsub.Options{
		Client:         cl,
		Authorize:      core.AuthorizedUpgrade,
		TopicAllowed:   core.CheckTopic,
		MaxConnections: p.MaxConnections,
		MaxFrameBytes:  int64(p.MaxFrameBytes),
		MaxInFlight:    p.MaxInFlight,
		FetchMaxBytes:  int32(p.FetchMaxBytes),
		FetchMaxWait:   time.Duration(p.FetchMaxWaitMs) * time.Millisecond,
		RequestTimeout: time.Duration(p.RequestTimeoutMs) * time.Millisecond,
		WriteTimeout:   time.Duration(ws.WriteTimeoutMs) * time.Millisecond,
		Logger:         log.With("door", "pubsub"),
		Registerer:     core.Registry(),
	}
}
