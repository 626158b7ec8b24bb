"""Training recipes: a strict pydantic schema and preset YAML files (a recipe is data)."""

from trainer.recipes.schema import (
    PRESETS_DIR,
    DataConfig,
    LoraConfig,
    LossConfig,
    OptimConfig,
    RecipeError,
    TrainConfig,
    dump_train_config,
    load_train_config,
    parse_override,
    resolve_preset,
)

__all__ = [
    "PRESETS_DIR",
    "DataConfig",
    "LoraConfig",
    "LossConfig",
    "OptimConfig",
    "RecipeError",
    "TrainConfig",
    "dump_train_config",
    "load_train_config",
    "parse_override",
    "resolve_preset",
]
