// What the read-only commands (diff, migrate) share: every item of a collection, page by page.
export interface Page<T> {
  items: T[];
  metadata?: { _continue?: string; continue?: string };
}

export async function listAll<T>(list: (params: { limit: number; _continue?: string }) => Promise<Page<T>>): Promise<T[]> {
  const items: T[] = [];
  let token: string | undefined;
  do {
    const page = await list({ limit: 500, ...(token ? { _continue: token } : {}) });
    items.push(...page.items);
    token = page.metadata?._continue ?? page.metadata?.continue ?? undefined;
  } while (token);
  return items;
}
