import { baseConfigSchema } from "@orderflow/shared";

export const configSchema = baseConfigSchema;
