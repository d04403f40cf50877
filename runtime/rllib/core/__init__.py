"""The learning parts: the network interface, its JAX MLP, the optimiser, losses, the learner."""
