"""prm_train: collect rollouts, build outcome / Monte-Carlo / TD targets, train, evaluate and export PRMs."""
