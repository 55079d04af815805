"""The trigger engine: delivers matched trigger events through HTTP and AMQP actions."""
