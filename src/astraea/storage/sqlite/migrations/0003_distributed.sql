-- What several processes need to share: which transport node holds each device, which nodes
-- are alive, persistent MQTT sessions, and who delivers each trigger queue.

-- The node a device is (or was last) connected through: a dead node's devices are found by
-- it, and a disconnection reported by a node the device has left changes nothing.
ALTER TABLE devices ADD COLUMN connection_node TEXT NOT NULL DEFAULT '';

CREATE INDEX devices_by_connection_node ON devices (connection_node) WHERE connected = 1;

-- Heartbeats of transport nodes; a row goes when its node is found dead.
CREATE TABLE transport_nodes (
    name TEXT PRIMARY KEY,
    last_seen INTEGER NOT NULL
) STRICT;

-- Persistent MQTT sessions: owner is the node holding the device (NULL while it is away).
CREATE TABLE mqtt_sessions (
    realm TEXT NOT NULL,
    device_id BLOB NOT NULL,
    owner TEXT,
    subscriptions TEXT NOT NULL,  -- JSON object: topic filter -> QoS
    qos2_received TEXT NOT NULL DEFAULT '[]',  -- JSON list of packet ids awaiting PUBREL
    PRIMARY KEY (realm, device_id),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
) STRICT;

CREATE INDEX mqtt_sessions_by_owner ON mqtt_sessions (owner) WHERE owner IS NOT NULL;

-- QoS 1/2 messages waiting for a device that is away, in position order.
CREATE TABLE mqtt_session_messages (
    realm TEXT NOT NULL,
    device_id BLOB NOT NULL,
    position INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL CHECK (qos IN (1, 2)),
    sent INTEGER NOT NULL CHECK (sent IN (0, 1)),  -- resent with DUP
    PRIMARY KEY (realm, device_id, position),
    FOREIGN KEY (realm, device_id) REFERENCES mqtt_sessions (realm, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Which triggers process delivers a queue, until when (ms since the epoch).
CREATE TABLE trigger_queue_leases (
    realm TEXT NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    policy TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (realm, policy)
) STRICT;
