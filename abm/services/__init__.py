"""Business operations. Each service owns its transaction and enqueues jobs only after commit."""
