"""Where images come from: MNIST (`mnist`), image folders and tfds sets (`datasets`), one command-line input
(`inputs`), and the description of a split's source that is written and read back (`sources`)."""
