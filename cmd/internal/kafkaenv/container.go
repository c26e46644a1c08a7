package kafkaenv

import (
	"context"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// The container branch runs the apache/kafka image as one KRaft node
// (broker and controller). Clients reach it on a port Docker maps at random,
// which the broker must advertise, so the container waits for a start script
// that is copied in once that port is known (testcontainers-go's own kafka
// module does the same for Confluent images; the version of that module the
// Go module proxy serves here, v0.40.0, supports only those).
const (
	clientPort   = "9092/tcp"
	startScript  = "/tmp/invroute_kafka_start.sh"
	kafkaRunPath = "/etc/kafka/docker/run" // the apache/kafka image's CMD
)

// ContainerEnv is the broker configuration of the container (and of
// docker-compose.yml, which sets the same keys). The advertised listeners
// are added by the start script.
var ContainerEnv = map[string]string{
	"KAFKA_NODE_ID":                                  "1",
	"KAFKA_PROCESS_ROLES":                            "broker,controller",
	"KAFKA_LISTENERS":                                "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9093,CONTROLLER://0.0.0.0:9094",
	"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":           "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
	"KAFKA_INTER_BROKER_LISTENER_NAME":               "BROKER",
	"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
	"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@localhost:9094",
	"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
	"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
	"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
	"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
	"KAFKA_NUM_PARTITIONS":                           "6",
}

// startScriptFor is the script that advertises the mapped endpoint and
// starts the broker.
func startScriptFor(endpoint, hostname string) string {
	return fmt.Sprintf("#!/bin/bash\nexport KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://%s,BROKER://%s:9093\nexec %s\n",
		endpoint, hostname, kafkaRunPath)
}

// startContainer starts image with testcontainers-go and returns its
// brokers (host:mapped-port) and a function that removes the container.
func startContainer(ctx context.Context, image string) (string, func(context.Context) error, error) {
	ctr, err := testcontainers.Run(ctx, image,
		testcontainers.WithExposedPorts(clientPort),
		testcontainers.WithEnv(ContainerEnv),
		testcontainers.WithEntrypoint("sh"),
		testcontainers.WithCmd("-c", "while [ ! -f "+startScript+" ]; do sleep 0.1; done; exec bash "+startScript),
		testcontainers.WithLifecycleHooks(testcontainers.ContainerLifecycleHooks{
			PostStarts: []testcontainers.ContainerHook{func(ctx context.Context, c testcontainers.Container) error {
				if err := wait.ForMappedPort(clientPort).WaitUntilReady(ctx, c); err != nil {
					return fmt.Errorf("wait for the mapped port: %w", err)
				}
				endpoint, err := c.PortEndpoint(ctx, clientPort, "")
				if err != nil {
					return err
				}
				inspect, err := c.Inspect(ctx)
				if err != nil {
					return err
				}
				script := startScriptFor(endpoint, inspect.Config.Hostname)
				if err := c.CopyToContainer(ctx, []byte(script), startScript, 0o755); err != nil {
					return fmt.Errorf("copy the start script: %w", err)
				}
				return wait.ForLog("Kafka Server started").WithStartupTimeout(2*time.Minute).WaitUntilReady(ctx, c)
			}},
		}),
	)
	stop := func(context.Context) error {
		if ctr == nil {
			return nil
		}
		return testcontainers.TerminateContainer(ctr)
	}
	if err != nil {
		_ = stop(ctx)
		return "", nil, fmt.Errorf("start %s: %w", image, err)
	}
	endpoint, err := ctr.PortEndpoint(ctx, clientPort, "")
	if err != nil {
		_ = stop(ctx)
		return "", nil, err
	}
	return endpoint, stop, nil
}
