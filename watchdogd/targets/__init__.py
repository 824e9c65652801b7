"""What can be rolled back: containers, Compose services, Swarm services, release directories."""
