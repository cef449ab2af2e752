// The admin key lives in sessionStorage only: gone when the tab closes, never in a URL.
const KEY = "meterway.adminKey";

export const session = {
  key(): string | null {
    return sessionStorage.getItem(KEY);
  },
  signIn(key: string): void {
    sessionStorage.setItem(KEY, key);
  },
  signOut(): void {
    sessionStorage.removeItem(KEY);
  },
};
