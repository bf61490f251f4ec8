# Keeps track of stock levels per item.
class Inventory
  def initialize
    @stock = Hash.new(0)
  end

  # Adds +count+ units of +item+ and returns the new level.
  def restock(item, count)
    raise ArgumentError, 'count must be positive' unless count.positive?

    @stock[item] += count
  end

  # Removes units if enough are available; returns true on success.
  def take(item, count = 1)
    return false if @stock[item] < count

    @stock[item] -= count
    true
  end

  def self.from_hash(levels)
    inv = new
    levels.each { |item, count| inv.restock(item, count) }
    inv
  end
end
